"""Your own account (GET/PATCH /me) and other users' public profiles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from tests.bridge.rest_client import Rest


async def test_me_is_the_signed_in_account(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada", display_name="Ada")
        response = await rest.http.get("/me", headers=account.headers)
    assert response.status_code == 200
    me = response.json()
    assert me["id"] == account.id
    assert (me["email"], me["username"], me["display_name"]) == (account.email, "ada", "Ada")
    assert isinstance(me["created_at"], int)
    assert "password_hash" not in me


async def test_patch_me_changes_the_display_name(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        response = await rest.http.patch(
            "/me", json={"display_name": "Countess Lovelace"}, headers=account.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["display_name"] == "Countess Lovelace"
        again = await rest.http.get("/me", headers=account.headers)
    assert again.json()["display_name"] == "Countess Lovelace"


async def test_patch_me_refuses_a_blank_or_long_name(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        for name in ("", "  \t ", "x" * 65):
            response = await rest.http.patch(
                "/me", json={"display_name": name}, headers=account.headers
            )
            rest.assert_error(response, 400, "invalid", field="display_name")
        response = await rest.http.patch("/me", json={"email": "x@y.z"}, headers=account.headers)
        rest.assert_error(response, 400, "invalid", field="email")


async def test_a_user_profile_shows_only_public_fields(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada", display_name="Ada")
        bob = await rest.register("bob")
        response = await rest.http.get(f"/users/{ada.id}", headers=bob.headers)
    assert response.status_code == 200
    assert response.json() == {"id": ada.id, "username": "ada", "display_name": "Ada"}


async def test_an_unknown_user_is_not_found(rest: Rest) -> None:
    with trio.fail_after(10):
        bob = await rest.register("bob")
        response = await rest.http.get("/users/u_nobody", headers=bob.headers)
    rest.assert_error(response, 404, "not_found")


async def test_sql_looking_text_is_stored_verbatim(rest: Rest) -> None:
    name = "Robert'); DROP TABLE users;--"
    with trio.fail_after(10):
        account = await rest.register("bobby", display_name=name)
        login = await rest.http.post(
            "/auth/login", json={"login": "' OR '1'='1", "password": "' OR '1'='1"}
        )
        rest.assert_error(login, 401, "invalid_credentials")
        response = await rest.http.get(f"/users/{account.id}", headers=account.headers)
    assert response.json()["display_name"] == name
