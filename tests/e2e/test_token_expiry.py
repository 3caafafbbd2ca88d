"""An open socket lives no longer than its access token (issue 12, item 6).

The rule (docs/protocol.md, ``auth``): before the token expires the client
sends ``auth`` with a fresh access token of the same user and device session;
otherwise the server closes with 4004 ACCESS_EXPIRED, a reconnect code: the
client refreshes over REST and reconnects with its cursors.

Tokens count on the node's clock; the open socket's deadline is a timer in
the connection's writer (trio time). So each test gives the node a
``ManualClock`` (on a whole second: a JWT's times are whole seconds) and moves
it through most of a token's life before connecting: what is left to wait is
a fraction of a second, and nothing waits with a fixed sleep.
"""

from __future__ import annotations

import time

import httpx
import pytest
import trio

from bridge.accounts.tokens import TokenService
from protocol.client import ConnectionClosed, ServerError, open_client
from protocol.errors import CloseCode
from realtime_server.base.clock import ManualClock, seconds_of, wall_ms
from tests.e2e.conftest import NodeFactory
from tests.e2e.helpers import login, register


def whole_second_clock() -> ManualClock:
    return ManualClock(wall_ms() // 1000 * 1000)


async def test_a_socket_whose_token_expires_is_closed_with_a_reconnect_code(
    node_factory: NodeFactory,
):
    clock = whole_second_clock()
    async with node_factory(clock=clock, access_token_ttl=2) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
        clock.advance(1500)  # half a second of the token left
        async with open_client(node.ws_url, alice.access_token) as a:
            with trio.fail_after(5):
                info = await a.wait_closed()
            assert info.code == CloseCode.ACCESS_EXPIRED
            assert CloseCode(info.code).should_reconnect
            assert "refresh" in info.reason
            with pytest.raises(ConnectionClosed):
                await a.ping()


async def test_auth_with_a_refreshed_token_keeps_the_socket_open(node_factory: NodeFactory):
    clock = whole_second_clock()
    async with node_factory(clock=clock, access_token_ttl=2) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice, bob = await register(http), await register(http)
            # The mobile flow: refresh over REST (same device session), then auth.
            r = await http.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
            assert r.status_code == 200, r.text
            clock.advance(1500)  # half a second left of every token so far
            async with open_client(node.ws_url, alice.access_token) as a:
                await a.authenticate(r.json()["access_token"])
                # A longer-lived token of the same session moves the deadline further.
                issuer = TokenService(
                    node.settings.jwt_secret, 60, 60, node.store, clock=seconds_of(clock)
                )
                await a.authenticate(issuer.issue_access(alice.id, a.welcome.session))
                # Bob's socket, opened last on a token as old as both of alice's
                # 2-second ones, is closed after both of their deadlines.
                async with open_client(node.ws_url, bob.access_token) as b:
                    with trio.fail_after(5):
                        assert (await b.wait_closed()).code == CloseCode.ACCESS_EXPIRED
                assert await a.ping()
                assert a.close_info is None


async def test_auth_refuses_tokens_of_another_user_or_session_and_expired_ones(
    node_factory: NodeFactory,
):
    clock = whole_second_clock()
    async with node_factory(clock=clock, access_token_ttl=3) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            bob = await register(http)
            alice_laptop = await login(http, alice, device="laptop")
        issuer = TokenService(node.settings.jwt_secret, 60, 60, node.store)
        expired = TokenService(
            node.settings.jwt_secret, 60, 60, node.store, clock=lambda: time.time() - 3600
        )
        clock.advance(1500)  # a second and a half of the first token left
        async with open_client(node.ws_url, alice.access_token) as a:
            refusals = {
                "another user": bob.access_token,
                "another device session": alice_laptop,
                "expired": expired.issue_access(alice.id, a.welcome.session),
                "forged": issuer.issue_access(alice.id, a.welcome.session)[:-4] + "AAAA",
                "not a token": "not-a-jwt",
            }
            codes = {}
            for why, token in refusals.items():
                with pytest.raises(ServerError) as refused:
                    await a.authenticate(token)
                codes[why] = refused.value.code
            assert codes == {
                "another user": "forbidden",
                "another device session": "forbidden",
                "expired": "token_expired",
                "forged": "unauthorized",
                "not a token": "unauthorized",
            }
            # Refusals change nothing: the socket still ends with the first token.
            with trio.fail_after(6):
                info = await a.wait_closed()
            assert info.code == CloseCode.ACCESS_EXPIRED
