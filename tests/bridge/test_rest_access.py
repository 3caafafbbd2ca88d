"""Bearer access tokens guard every route except auth, health, ready and openapi."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

import jwt
import pytest
import trio

from bridge.accounts.tokens import TokenService

if TYPE_CHECKING:
    from tests.bridge.rest_client import Rest

GUARDED = [
    ("GET", "/me"),
    ("PATCH", "/me"),
    ("GET", "/users/u_x"),
    ("POST", "/rooms"),
    ("GET", "/rooms"),
    ("GET", "/rooms/r_x"),
    ("GET", "/rooms/r_x/messages"),
    ("POST", "/rooms/r_x/read"),
]


@pytest.mark.parametrize(("method", "path"), GUARDED)
async def test_without_a_token_every_guarded_route_is_unauthorized(
    rest: Rest, method: str, path: str
) -> None:
    with trio.fail_after(10):
        response = await rest.http.request(method, path, json={})
    rest.assert_error(response, 401, "unauthorized")


async def test_malformed_authorization_headers_are_unauthorized(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        headers = [
            "Bearer",
            "Basic YWRhOnB3",
            account.access_token,  # no scheme
            "Bearer not.a.jwt",
            "Bearer " + "x" * 2000,
        ]
        for header in headers:
            response = await rest.http.get("/me", headers={"Authorization": header})
            rest.assert_error(response, 401, "unauthorized")


async def test_the_bearer_scheme_is_case_insensitive(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        response = await rest.http.get(
            "/me", headers={"Authorization": f"bearer {account.access_token}"}
        )
    assert response.status_code == 200


async def test_a_tampered_token_is_unauthorized(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        header, payload, signature = account.access_token.split(".")
        forged_payload = jwt.utils.base64url_encode(
            b'{"sub":"u_someone_else","sid":"s_x","typ":"access","iat":1,"exp":9999999999,"jti":"x"}'
        ).decode()
        flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        for token in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.{flipped}"):
            response = await rest.http.get("/me", headers={"Authorization": f"Bearer {token}"})
            rest.assert_error(response, 401, "unauthorized")


async def test_a_token_signed_with_another_secret_is_unauthorized(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        stranger = TokenService(secrets.token_urlsafe(48), 900, 3600, rest.store)
        token = stranger.issue_access(account.id, "s_x")
        response = await rest.http.get("/me", headers={"Authorization": f"Bearer {token}"})
        rest.assert_error(response, 401, "unauthorized")


async def test_an_unsigned_alg_none_token_is_unauthorized(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        claims = {
            "sub": account.id,
            "sid": "s",
            "typ": "access",
            "iat": 1,
            "exp": 9999999999,
            "jti": "j",
        }
        token = jwt.encode(claims, None, algorithm="none")
        response = await rest.http.get("/me", headers={"Authorization": f"Bearer {token}"})
        rest.assert_error(response, 401, "unauthorized")


async def test_an_expired_token_is_token_expired(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        settings = rest.services.settings
        an_hour_ago = TokenService(
            settings.jwt_secret,
            settings.access_token_ttl,
            settings.refresh_token_ttl,
            rest.store,
            clock=lambda: time.time() - 3600,
        )
        token = an_hour_ago.issue_access(account.id, "s_x")
        response = await rest.http.get("/me", headers={"Authorization": f"Bearer {token}"})
        rest.assert_error(response, 401, "token_expired")


async def test_a_refresh_token_is_not_an_access_token(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        response = await rest.http.get(
            "/me", headers={"Authorization": f"Bearer {account.refresh_token}"}
        )
    rest.assert_error(response, 401, "unauthorized")


async def test_auth_is_checked_before_the_body_is_looked_at(rest: Rest) -> None:
    with trio.fail_after(10):
        response = await rest.http.post("/rooms", content=b"{not json")
    rest.assert_error(response, 401, "unauthorized")
