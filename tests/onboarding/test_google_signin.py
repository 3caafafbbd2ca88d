"""Item 3: Google sign-in (OpenID Connect), against a local provider signing real RS256 tokens."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from realtime_server.node import Node
from tests.onboarding.conftest import Api, Start, assert_error
from tests.onboarding.outside import (
    CLIENT_ID,
    MOBILE_CLIENT_ID,
    REDIRECT_URI,
    GoogleUser,
    Outside,
)

OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def browser_sign_in(
    api: Api, outside: Outside, *, device: str = "web", http: httpx.AsyncClient | None = None
) -> tuple[httpx.Response, dict[str, str]]:
    """Start, consent at the provider, come back: the callback's answer and its query."""
    r = await api.http.get("/auth/google/start", params={"device": device})
    assert r.status_code == 200, r.text
    start = r.json()
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start["authorization_url"])
    assert consent.status_code == 302
    location = urlsplit(consent.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == start["state"]
    callback = await (http or api.http).get("/auth/google/callback", params=query)
    return callback, query


async def mobile_sign_in(api: Api, outside: Outside, **claims: Any) -> httpx.Response:
    r = await api.http.post("/auth/google/nonce", json={"device": "android"})
    assert r.status_code == 201, r.text
    nonce = r.json()["nonce"]
    token = outside.mint(outside.claims(outside.user, aud=MOBILE_CLIENT_ID, nonce=nonce, **claims))
    return await api.http.post("/auth/google/id-token", json={"id_token": token})


async def test_the_browser_flow_uses_pkce_state_and_nonce_and_makes_an_account(
    api: Api, outside: Outside
) -> None:
    outside.user = GoogleUser(sub="g-100", email="grace@gmail.example", name="Grace Hopper")
    r, _ = await browser_sign_in(api, outside)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] is True and body["profile_complete"] is False
    user = body["user"]
    assert (user["email"], user["email_verified"], user["display_name"]) == (
        "grace@gmail.example",
        True,
        "Grace Hopper",
    )
    [asked] = outside.authorize_requests
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["scope"] == "openid email profile" and asked["nonce"]
    [exchanged] = outside.token_requests
    assert exchanged["code_verifier"] and exchanged["redirect_uri"] == REDIRECT_URI
    me = await api.http.get(
        "/me/profile", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["id"] == user["id"]

    again, _ = await browser_sign_in(api, outside)
    assert again.status_code == 200 and again.json()["user"]["id"] == user["id"]
    assert again.json()["created"] is False


async def test_a_callback_state_works_once(api: Api, outside: Outside) -> None:
    first, query = await browser_sign_in(api, outside)
    assert first.status_code == 201
    replay = await api.http.get("/auth/google/callback", params=query)
    assert_error(replay, 400, "oidc_state_invalid", "state")


async def test_a_callback_from_another_browser_is_refused(
    onode: Node, api: Api, outside: Outside
) -> None:
    async with httpx.AsyncClient(base_url=onode.http_url) as victim:
        r, _ = await browser_sign_in(api, outside, http=victim)
    assert_error(r, 400, "oidc_state_invalid", "state")
    # The attempt spent the state: nothing was made, and the flow cannot be retried.
    assert outside.token_requests == []


async def test_unknown_states_and_provider_errors_are_refused(api: Api, outside: Outside) -> None:
    r = await api.http.get("/auth/google/callback", params={"state": "made-up", "code": "x"})
    assert_error(r, 400, "oidc_state_invalid", "state")
    assert_error(await api.http.get("/auth/google/callback"), 400, "oidc_state_invalid", "state")
    start = (await api.http.get("/auth/google/start")).json()
    r = await api.http.get(
        "/auth/google/callback", params={"state": start["state"], "error": "access_denied"}
    )
    assert "access_denied" in assert_error(r, 400, "oidc_state_invalid", "code")["message"]


async def test_a_code_the_provider_refuses_is_refused(api: Api, outside: Outside) -> None:
    start = (await api.http.get("/auth/google/start")).json()
    r = await api.http.get(
        "/auth/google/callback", params={"state": start["state"], "code": "forged-code"}
    )
    assert_error(r, 400, "oidc_state_invalid", "code")


async def test_an_id_token_with_another_nonce_is_refused(api: Api, outside: Outside) -> None:
    outside.wrong_nonce = True
    r, _ = await browser_sign_in(api, outside)
    assert "nonce" in assert_error(r, 401, "id_token_invalid")["message"]


async def test_a_verified_email_links_to_the_account_that_proved_it(
    api: Api, outside: Outside
) -> None:
    ada = await api.password_user("ada")
    r = await api.http.post("/me/email/verify", headers=ada.headers)
    assert r.status_code == 202, r.text
    code = outside.last_code("ada@example.com")
    r = await api.http.post("/me/email/verify/confirm", json={"code": code}, headers=ada.headers)
    assert r.status_code == 200 and r.json()["email_verified"] is True
    outside.user = GoogleUser(sub="g-ada", email="ADA@example.com")
    r = await mobile_sign_in(api, outside)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == ada.id and r.json()["created"] is False


async def test_an_unproven_email_is_not_linked_and_yields_to_googles_proof(
    api: Api, outside: Outside
) -> None:
    # Issue 12: whoever merely typed an address must not block its owner.
    typed = await api.password_user("ada")
    outside.user = GoogleUser(sub="g-ada", email="ada@example.com")
    r = await mobile_sign_in(api, outside)
    assert r.status_code == 201, r.text
    owner = r.json()["user"]
    assert owner["id"] != typed.id and owner["email"] == "ada@example.com"
    assert owner["email_verified"] is True
    me = (await api.http.get("/me/profile", headers=typed.headers)).json()
    assert me["email"] is None and me["email_verified"] is False
    # The owner's next Google sign-in is the same account.
    r = await mobile_sign_in(api, outside)
    assert r.status_code == 200 and r.json()["user"]["id"] == owner["id"]


async def test_an_email_google_has_not_verified_is_not_used(api: Api, outside: Outside) -> None:
    await api.password_user("ada")
    outside.user = GoogleUser(sub="g-x", email="ada@example.com", email_verified=False)
    r = await mobile_sign_in(api, outside)
    assert r.status_code == 201, r.text
    assert r.json()["user"]["email"] is None


async def test_a_mobile_id_token_signs_in_once_per_nonce(api: Api, outside: Outside) -> None:
    r = await api.http.post("/auth/google/nonce", json={})
    nonce = r.json()["nonce"]
    token = outside.mint(outside.claims(outside.user, aud=MOBILE_CLIENT_ID, nonce=nonce))
    first = await api.http.post("/auth/google/id-token", json={"id_token": token})
    assert first.status_code == 201, first.text
    replay = await api.http.post("/auth/google/id-token", json={"id_token": token})
    assert "nonce" in assert_error(replay, 401, "id_token_invalid")["message"]


def _tamper(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    data = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{data}.{signature}"


def _unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]


def _hmac_with_public_key(outside: Outside, claims: dict[str, Any]) -> str:
    # The classic confusion: the provider's PUBLIC key used as an HMAC secret.
    pem = outside.jwks()["keys"][0]["n"].encode()
    return jwt.encode(claims, pem, algorithm="HS256", headers={"kid": outside.kid})


FORGERIES = {
    "tampered payload": lambda o, c: _tamper(o.mint(c), email="root@example.com"),
    "another key, same kid": lambda o, c: o.mint(c, key=OTHER_KEY),
    "an unknown kid": lambda o, c: o.mint(c, key=OTHER_KEY, kid="rogue"),
    "alg none": lambda o, c: _unsigned(c),
    "HS256 with the public key": _hmac_with_public_key,
    "another audience": lambda o, c: o.mint({**c, "aud": "someone-else", "azp": "x"}),
    "another issuer": lambda o, c: o.mint({**c, "iss": "https://evil.example"}),
    "expired": lambda o, c: o.mint({**c, "exp": int(time.time()) - 120}),
    "issued in the future": lambda o, c: o.mint({**c, "iat": int(time.time()) + 600}),
    "no subject": lambda o, c: o.mint({k: v for k, v in c.items() if k != "sub"}),
    "not a JWT": lambda o, c: "definitely.not.a-jwt",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_forged_and_tampered_id_tokens_are_refused(
    api: Api, outside: Outside, forgery: str
) -> None:
    nonce = (await api.http.post("/auth/google/nonce", json={})).json()["nonce"]
    claims = outside.claims(outside.user, aud=MOBILE_CLIENT_ID, nonce=nonce)
    token = FORGERIES[forgery](outside, claims)
    r = await api.http.post("/auth/google/id-token", json={"id_token": token})
    assert_error(r, 401, "id_token_invalid")
    # Nothing was made: a genuine token for the same person still creates the account.
    r = await mobile_sign_in(api, outside)
    assert r.status_code == 201 and r.json()["created"] is True


async def test_a_token_for_the_web_client_is_accepted_too(api: Api, outside: Outside) -> None:
    nonce = (await api.http.post("/auth/google/nonce", json={})).json()["nonce"]
    token = outside.mint(outside.claims(outside.user, aud=CLIENT_ID, nonce=nonce))
    r = await api.http.post("/auth/google/id-token", json={"id_token": token})
    assert r.status_code == 201, r.text


async def test_google_sign_in_without_settings_is_not_configured(start: Start) -> None:
    async with start(google_client_id="", google_mobile_client_ids="") as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            assert_error(await http.get("/auth/google/start"), 503, "not_configured")
            r = await http.post("/auth/google/nonce", json={})
            assert_error(r, 503, "not_configured")


async def test_an_unreachable_provider_answers_502(start: Start) -> None:
    async with start(google_issuer="http://127.0.0.1:9/oidc", oidc_http_timeout=2.0) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            assert_error(await http.get("/auth/google/start"), 502, "provider_unavailable")
