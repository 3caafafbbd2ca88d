"""ICE servers and TURN REST credentials, checked against a TURN server that knows the scheme."""

from __future__ import annotations

import asyncio

import trio
from aioice import turn

from bridge.calls.turn import ice_servers, split_urls, turn_credentials
from protocol import frames_calls as fc
from protocol.client import open_client
from realtime_server.base.settings import Settings
from tests.calls.helpers import direct_room, start
from tests.calls.turn_server import TurnServer
from tests.conftest import NodeFactory
from tests.e2e.helpers import auth, register

SECRET = "north-sea-turn-secret"


def test_credentials_follow_the_turn_rest_scheme():
    username, credential = turn_credentials(SECRET, "u_42", 1_700_003_600)
    assert username == "1700003600:u_42"
    # Known answer, from openssl: echo -n "1700003600:u_42" |
    #   openssl dgst -sha1 -hmac "north-sea-turn-secret" -binary | base64
    assert credential == "aczLGhZ2OFoC3/VuqoRLcc160XM="


def test_without_a_secret_only_stun_is_handed_out():
    settings = Settings(
        call_stun_urls="stun:a.example:3478, stun:b.example:3478",
        call_turn_urls="turn:t.example:3478",
    )
    [stun_server] = ice_servers(settings, "u_1", now=1000.0)
    assert stun_server == fc.IceServer(urls=["stun:a.example:3478", "stun:b.example:3478"])
    assert ice_servers(Settings(), "u_1", now=1000.0) == []
    assert split_urls(" a,b  c ") == ["a", "b", "c"]


def test_turn_credentials_expire_after_the_ttl_and_name_the_user():
    settings = Settings(
        call_turn_urls="turn:t.example:3478?transport=udp turns:t.example:5349",
        call_turn_secret=SECRET,
        call_turn_ttl=600,
    )
    [server] = ice_servers(settings, "u_7", now=1000.9)
    assert server.urls == ["turn:t.example:3478?transport=udp", "turns:t.example:5349"]
    assert server.username == "1600:u_7"
    assert (server.username, server.credential) == turn_credentials(SECRET, "u_7", 1600)


async def _allocate(secret: str, username: str, credential: str) -> tuple[bool, TurnServer]:
    """Allocate a relay with aioice's TURN client on a fresh local TURN server."""
    loop = asyncio.get_running_loop()
    server = TurnServer(secret)
    transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        client, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(
                asyncio.DatagramProtocol, ("127.0.0.1", port), username, credential
            ),
            timeout=10,
        )
    except Exception:
        transport.close()
        return False, server
    client.close()
    await asyncio.sleep(0.05)  # let the closing Refresh go out
    transport.close()
    return True, server


def allocate(secret: str, username: str, credential: str) -> tuple[bool, TurnServer]:
    return asyncio.run(_allocate(secret, username, credential))


async def test_credentials_from_rest_and_call_frames_open_a_turn_relay(
    node_factory: NodeFactory, http_factory
):
    async with node_factory(
        call_turn_urls="turn:127.0.0.1:3478?transport=udp",
        call_stun_urls="stun:127.0.0.1:3478",
        call_turn_secret=SECRET,
        call_turn_ttl=300,
    ) as node:
        async with http_factory(node) as http:
            ada, bob = await register(http), await register(http)
            r = await http.get("/calls/ice-servers", headers=auth(ada))
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["ttl"] == 300
            stun_server, turn_server = body["ice_servers"]
            assert stun_server == {"urls": ["stun:127.0.0.1:3478"]}
            assert turn_server["username"].endswith(f":{ada.id}")

            ok, server = await trio.to_thread.run_sync(
                allocate, SECRET, turn_server["username"], turn_server["credential"]
            )
            assert ok and server.allocations == [turn_server["username"]]

            # The same credentials come with the call frames, per user.
            room = await direct_room(http, ada, bob)
            async with open_client(node.ws_url, ada.access_token) as a:
                call = await start(a, room)
            assert call.ice_servers is not None
            in_call = call.ice_servers[1]
            assert in_call.username is not None and in_call.username.endswith(f":{ada.id}")
            ok, _ = await trio.to_thread.run_sync(
                allocate, SECRET, in_call.username, in_call.credential
            )
            assert ok

            r = await http.get("/calls/ice-servers")
            assert r.status_code == 401


async def test_the_turn_server_refuses_expired_or_forged_credentials():
    expired = turn_credentials(SECRET, "u_1", 1_000_000)  # long past
    ok, server = await trio.to_thread.run_sync(allocate, SECRET, *expired)
    assert not ok and server.allocations == []
    forged = turn_credentials("another secret", "u_1", 4_000_000_000)
    ok, server = await trio.to_thread.run_sync(allocate, SECRET, *forged)
    assert not ok and server.refused == [forged[0]]
