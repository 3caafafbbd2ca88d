"""Issue 12, items 3 and 4: a signed-out session stays signed out.

- Remote sign-out, a password change or reset, and logout refuse the
  session's access token at once, and still after the node restarts on the
  same database (the list is in storage, loaded at start-up).
- Reusing a rotated refresh token signs the whole device session out: the
  access token it holds now is refused and its open socket closes with 4104.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio

from bridge.accounts.tokens import TokenService
from protocol.client import HandshakeRejected, open_client
from protocol.errors import CloseCode
from realtime_server.node import Node
from storage.base import Store
from storage.onboarding import onboarding_store
from tests.onboarding.conftest import Api, Person, Start, assert_error
from tests.onboarding.outside import Outside

NEW_PASSWORD = "a brand new password"


async def refused_everywhere(node: Node, http: httpx.AsyncClient, person: Person) -> None:
    """The access token opens neither REST nor a socket."""
    assert_error(await http.get("/me/profile", headers=person.headers), 401, "unauthorized")
    with pytest.raises(HandshakeRejected) as rejected:
        async with open_client(node.ws_url, person.access_token):
            pass
    assert rejected.value.code == CloseCode.UNAUTHORIZED


async def remote_sign_out(api: Api, me: Person, other: Person) -> None:
    sessions = (await api.http.get("/me/sessions", headers=me.headers)).json()["sessions"]
    target = next(s["id"] for s in sessions if s["device"] == "pixel")
    assert (await api.http.delete(f"/me/sessions/{target}", headers=me.headers)).status_code == 204


async def password_change(api: Api, me: Person, other: Person) -> None:
    r = await api.http.post(
        "/me/password",
        json={"current_password": "correct horse battery", "new_password": NEW_PASSWORD},
        headers=me.headers,
    )
    assert r.status_code == 204, r.text


async def logout(api: Api, me: Person, other: Person) -> None:
    r = await api.http.post("/auth/logout", json={"refresh_token": other.refresh_token})
    assert r.status_code == 204


async def password_reset(api: Api, me: Person, other: Person) -> None:
    r = await api.http.post("/auth/password/forgot", json={"email": "ada@example.com"})
    assert r.status_code == 202, r.text
    code = api.world.last_code("ada@example.com")
    r = await api.http.post(
        "/auth/password/reset",
        json={"email": "ada@example.com", "code": code, "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 204, r.text


SignOut = Callable[[Api, Person, Person], Awaitable[None]]


@pytest.mark.parametrize(
    "sign_out",
    [remote_sign_out, password_change, logout, password_reset],
    ids=["remote", "password-change", "logout", "password-reset"],
)
async def test_a_signed_out_token_stays_refused_after_a_restart(
    start: Start, outside: Outside, sign_out: SignOut
) -> None:
    async with start() as node, httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        api = Api(http, outside)
        me = await api.password_user("ada", device="laptop")
        r = await http.post(
            "/auth/login",
            json={"login": "ada", "password": "correct horse battery", "device": "pixel"},
        )
        body = r.json()
        pixel = Person(body["user"]["id"], body["access_token"], body["refresh_token"])
        async with open_client(node.ws_url, pixel.access_token, device="pixel") as socket:
            await sign_out(api, me, pixel)
            with trio.fail_after(2):
                assert (await socket.wait_closed()).code == CloseCode.SESSION_REVOKED
        await refused_everywhere(node, http, pixel)
    # A new node on the same database: the token has not expired, and is still refused.
    async with start() as node, httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        await refused_everywhere(node, http, pixel)
        r = await http.post("/auth/refresh", json={"refresh_token": pixel.refresh_token})
        assert r.status_code == 401
        if sign_out is not password_reset:  # a reset signs out every device, mine too
            assert (await http.get("/me/profile", headers=me.headers)).status_code == 200


async def test_a_reused_refresh_token_signs_the_whole_session_out(onode: Node, api: Api) -> None:
    me, _ = await api.phone_sign_in("+33612345678", device="pixel")
    laptop, _ = await api.phone_sign_in("+33612345678", device="laptop")
    r = await api.http.post("/auth/refresh", json={"refresh_token": me.refresh_token})
    assert r.status_code == 200
    rotated = Person(me.id, r.json()["access_token"], r.json()["refresh_token"])
    async with (
        open_client(onode.ws_url, rotated.access_token, device="pixel") as socket,
        open_client(onode.ws_url, laptop.access_token, device="laptop") as other_device,
    ):
        # Someone replays the old refresh token: one of the two holders stole it.
        r = await api.http.post("/auth/refresh", json={"refresh_token": me.refresh_token})
        assert_error(r, 401, "token_reused")
        with trio.fail_after(2):
            assert (await socket.wait_closed()).code == CloseCode.SESSION_REVOKED
        assert await other_device.ping() > 0  # another device session is untouched
    for person in (rotated, me):
        await refused_everywhere(onode, api.http, person)
    r = await api.http.post("/auth/refresh", json={"refresh_token": rotated.refresh_token})
    assert_error(r, 401, "token_reused")
    assert (await api.http.get("/me/profile", headers=laptop.headers)).status_code == 200


async def test_a_sign_out_is_kept_only_while_its_tokens_could_live(store: Store) -> None:
    now = [1_000_000.0]
    tokens = TokenService("k" * 32, 900, 3600, store, clock=lambda: now[0])
    token = tokens.issue_access("u_ada", "s_pixel")
    await tokens.sign_out("u_ada", ["s_pixel"])
    after_restart = TokenService("k" * 32, 900, 3600, store, clock=lambda: now[0])
    assert await after_restart.load_signed_out() == 1
    with pytest.raises(Exception, match="signed out"):
        after_restart.verify_access(token)
    # Once every access token of the session has expired the row goes too.
    now[0] += 900 + 61
    assert (
        await TokenService("k" * 32, 900, 3600, store, clock=lambda: now[0]).load_signed_out() == 0
    )
    assert await onboarding_store(store).signed_out_sessions(0) == {}
