"""Issue 12, item 7: web security headers on every REST response, and no
cache may keep an answer that carries tokens or secrets."""

from __future__ import annotations

import httpx

from realtime_server.node import Node
from tests.onboarding.conftest import Api
from tests.onboarding.outside import GoogleUser, Outside
from tests.onboarding.test_google_signin import browser_sign_in, mobile_sign_in

PASSWORD = "correct horse battery"


def assert_hardened(response: httpx.Response) -> None:
    h = response.headers
    assert h["X-Content-Type-Options"] == "nosniff", response.request.url
    assert h["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert h["Referrer-Policy"] == "no-referrer"


def assert_no_store(response: httpx.Response) -> None:
    assert_hardened(response)
    assert response.headers["Cache-Control"] == "no-store", response.request.url


async def test_every_answer_that_carries_tokens_is_not_stored(
    onode: Node, api: Api, outside: Outside
) -> None:
    http = api.http
    r = await http.post(
        "/auth/register", json={"email": "ada@example.com", "username": "ada", "password": PASSWORD}
    )
    assert r.status_code == 201 and "access_token" in r.json()
    assert_no_store(r)
    r = await http.post("/auth/login", json={"login": "ada", "password": PASSWORD})
    assert r.status_code == 200
    assert_no_store(r)
    r = await http.post("/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
    assert r.status_code == 200
    assert_no_store(r)
    # Phone: the code request (it may echo the code) and the sign-in.
    r = await api.ask_code("+33612345678")
    assert r.status_code == 202
    assert_no_store(r)
    r = await api.verify("+33612345678", outside.last_code("+33612345678"))
    assert r.status_code == 201
    assert_no_store(r)
    # Google: the browser flow's start (state cookie) and callback, and a mobile ID token.
    r = await http.get("/auth/google/start")
    assert r.status_code == 200
    assert_no_store(r)
    callback, _ = await browser_sign_in(api, outside)
    assert callback.status_code == 201, callback.text
    assert_no_store(callback)
    outside.user = GoogleUser(sub="g-bob", email="bob@example.com")
    r = await mobile_sign_in(api, outside)
    assert r.status_code == 201, r.text
    assert_no_store(r)
    # TURN credentials are secrets too.
    token = (await http.post("/auth/login", json={"login": "ada", "password": PASSWORD})).json()
    r = await http.get(
        "/calls/ice-servers", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert r.status_code == 200
    assert_no_store(r)


async def test_errors_and_other_answers_carry_the_headers_too(onode: Node, api: Api) -> None:
    http = api.http
    for response in (
        await http.get("/health"),
        await http.get("/openapi.json"),
        await http.get("/no/such/path"),
        await http.get("/me/profile"),  # 401
        await http.post("/auth/login", content=b"{not json"),
        await http.delete("/health"),  # 405
    ):
        assert_hardened(response)
    r = await http.post("/auth/login", json={"login": "nobody", "password": "x"})
    assert r.status_code == 401
    assert_no_store(r)
