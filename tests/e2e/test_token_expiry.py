"""An open socket lives no longer than its access token (issue 12, item 6).

The rule (docs/protocol.md, ``auth``): before the token expires the client
sends ``auth`` with a fresh access token of the same user and device session;
otherwise the server closes with 4004 ACCESS_EXPIRED, a reconnect code: the
client refreshes over REST and reconnects with its cursors.
"""

from __future__ import annotations

import time

import httpx
import pytest
import trio

from bridge.accounts.tokens import TokenService
from protocol.client import ConnectionClosed, ServerError, open_client
from protocol.errors import CloseCode
from tests.e2e.conftest import NodeFactory
from tests.e2e.helpers import login, register


async def test_a_socket_whose_token_expires_is_closed_with_a_reconnect_code(
    node_factory: NodeFactory,
):
    async with node_factory(access_token_ttl=2) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
        async with open_client(node.ws_url, alice.access_token) as a:
            with trio.fail_after(5):
                info = await a.wait_closed()
            assert info.code == CloseCode.ACCESS_EXPIRED
            assert CloseCode(info.code).should_reconnect
            assert "refresh" in info.reason
            with pytest.raises(ConnectionClosed):
                await a.ping()


async def test_auth_with_a_refreshed_token_keeps_the_socket_open(node_factory: NodeFactory):
    async with node_factory(access_token_ttl=2) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            async with open_client(node.ws_url, alice.access_token) as a:
                # The mobile flow: refresh over REST (same device session), then auth.
                r = await http.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
                assert r.status_code == 200, r.text
                await a.authenticate(r.json()["access_token"])
                # A longer-lived token of the same session moves the deadline further.
                longer = TokenService(node.settings.jwt_secret, 60, 60, node.store).issue_access(
                    alice.id, a.welcome.session
                )
                await a.authenticate(longer)
                await trio.sleep(3.5)  # past both 2-second tokens
                assert await a.ping()
                assert a.close_info is None


async def test_auth_refuses_tokens_of_another_user_or_session_and_expired_ones(
    node_factory: NodeFactory,
):
    async with node_factory(access_token_ttl=3) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            bob = await register(http)
            alice_laptop = await login(http, alice, device="laptop")
        issuer = TokenService(node.settings.jwt_secret, 60, 60, node.store)
        expired = TokenService(
            node.settings.jwt_secret, 60, 60, node.store, clock=lambda: time.time() - 3600
        )
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
