"""Presence and last seen over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import trio

from protocol.client import Client, open_client
from protocol.frames_presence import Presence, PresenceGet, PresenceGetData, PresenceList
from realtime_server.node import Node
from storage.base import now_ms
from tests.conftest import NodeFactory
from tests.e2e.helpers import Account, auth, create_group, login, register
from tests.rich.live import assert_no_push_of, next_of


async def ask(
    client: Client, *users: Account, sub: bool = True
) -> dict[str, tuple[bool, int | None]]:
    reply = await client.request(
        PresenceGet(id=0, d=PresenceGetData(users=[u.id for u in users], sub=sub))
    )
    assert isinstance(reply, PresenceList)
    return {s.user: (s.online, s.last_seen) for s in reply.d.users}


async def test_online_then_offline_with_last_seen_after_the_grace_period(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(presence_grace=0.3, presence_throttle=0.0) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada, bob, eve = await register(http), await register(http), await register(http)
            await create_group(http, ada, bob)
        async with (
            open_client(node.ws_url, bob.access_token) as b,
            open_client(node.ws_url, eve.access_token) as e,
        ):
            assert await ask(b, ada) == {ada.id: (False, None)}  # never seen
            # Eve shares no room with ada: she may not know, and is not told.
            assert await ask(e, ada) == {}
            async with open_client(node.ws_url, ada.access_token):
                got = await next_of(b, Presence)
                assert (got.d.user, got.d.online) == (ada.id, True)
                assert await ask(b, ada) == {ada.id: (True, None)}
                left = now_ms()
            got = await next_of(b, Presence, timeout=3)
            assert (got.d.user, got.d.online) == (ada.id, False)
            assert got.d.last_seen is not None and got.d.last_seen >= left
            assert await ask(b, ada) == {ada.id: (False, got.d.last_seen)}
            await assert_no_push_of(e, Presence, 0.1)
            # last_seen is stored: the setting endpoint shows it to ada.
            async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
                r = await http.get("/me/presence", headers=auth(ada))
            assert r.json() == {"visibility": "everyone", "last_seen": got.d.last_seen}


async def test_online_while_any_device_is_connected_and_no_flapping(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(presence_grace=1.0, presence_throttle=0.0) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada, bob = await register(http), await register(http)
            await create_group(http, ada, bob)
            laptop = await login(http, ada, "laptop")
        tracker = node.gateway.services.presence
        async with open_client(node.ws_url, bob.access_token) as b:
            await ask(b, ada)
            async with open_client(node.ws_url, ada.access_token):
                assert (await next_of(b, Presence)).d.online is True
                async with open_client(node.ws_url, laptop, device="laptop"):
                    pass  # one device leaves, the other stays: still online
                # A reconnect within the grace period: nobody hears of it.
                async with open_client(node.ws_url, laptop, device="laptop"):
                    pass
            async with open_client(node.ws_url, ada.access_token):
                await assert_no_push_of(b, Presence, 0.4)
                assert await ask(b, ada) == {ada.id: (True, None)}
            assert tracker.broadcasts[ada.id] == 1
            assert (await next_of(b, Presence, timeout=3)).d.online is False


async def test_the_visibility_setting_decides_who_sees_presence(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(presence_grace=0.2, presence_throttle=0.0) as node:
        tracker = node.gateway.services.presence
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada, bob, eve = await register(http), await register(http), await register(http)
            await create_group(http, ada, bob)  # bob shares a room with ada
            r = await http.post("/contacts", json={"user_id": eve.id}, headers=auth(ada))
            assert r.status_code == 201  # eve is in ada's contacts, shares no room
            for bad in ({"visibility": "friends"}, {}, {"visibility": None}):
                r = await http.put("/me/presence", json=bad, headers=auth(ada))
                assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
            # visibility -> (does bob see ada, does eve see ada)
            expected = {
                "everyone": (True, True),
                "contacts": (False, True),
                "nobody": (False, False),
            }
            for visibility, (bob_sees, eve_sees) in expected.items():
                r = await http.put(
                    "/me/presence", json={"visibility": visibility}, headers=auth(ada)
                )
                assert r.status_code == 200 and r.json()["visibility"] == visibility
                async with (
                    open_client(node.ws_url, bob.access_token) as b,
                    open_client(node.ws_url, eve.access_token) as e,
                ):
                    assert (ada.id in await ask(b, ada)) is bob_sees, visibility
                    assert (ada.id in await ask(e, ada)) is eve_sees, visibility
                    async with open_client(node.ws_url, ada.access_token) as a:
                        for client, sees in ((b, bob_sees), (e, eve_sees)):
                            if sees:
                                assert (await next_of(client, Presence)).d.user == ada.id
                            else:
                                await assert_no_push_of(client, Presence, 0.3)
                        # Ada's own setting never hides others from her.
                        assert await ask(a, bob) == {bob.id: (True, None)}
                        assert await ask(a, ada) == {ada.id: (True, None)}
                with trio.fail_after(5):  # ada's grace period ends (trio time)
                    while tracker.is_online(ada.id):  # noqa: ASYNC110 - a server-side fact
                        await trio.sleep(0.01)


async def test_a_block_hides_presence_both_ways(node: Node, http: httpx.AsyncClient) -> None:
    ada, bob = await register(http), await register(http)
    await create_group(http, ada, bob)
    r = await http.post("/blocks", json={"user_id": bob.id}, headers=auth(ada))
    assert r.status_code in (200, 201, 204), r.text
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        assert await ask(a, bob) == {}
        assert await ask(b, ada) == {}


async def test_presence_broadcasts_are_throttled_and_the_latest_state_wins(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(presence_grace=0.0, presence_throttle=1.0) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada, bob = await register(http), await register(http)
            await create_group(http, ada, bob)
        async with open_client(node.ws_url, bob.access_token) as b:
            await ask(b, ada)
            for _ in range(5):  # flapping with no grace period at all
                async with open_client(node.ws_url, ada.access_token):
                    pass
                await trio.sleep(0.02)
            first = await next_of(b, Presence)
            assert first.d.online is True
            t0 = trio.current_time()
            last = await next_of(b, Presence, timeout=3)
            # The rest of the flapping collapsed into one broadcast a window later.
            assert last.d.online is False and trio.current_time() - t0 >= 0.5
            await assert_no_push_of(b, Presence, 1.2)
            assert node.gateway.services.presence.broadcasts[ada.id] == 2


async def test_a_session_hears_only_users_it_asked_about(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await register(http), await register(http)
    await create_group(http, ada, bob)
    async with open_client(node.ws_url, bob.access_token) as b:
        await ask(b, ada, sub=False)
        async with open_client(node.ws_url, ada.access_token):
            await assert_no_push_of(b, Presence, 0.3)


async def test_last_seen_privacy_and_presence_visibility_are_one_setting(
    node_factory: NodeFactory,
) -> None:
    """Issue 12: {"last_seen": "nobody"} hides online status too, by design; the API says so."""
    async with node_factory(presence_grace=0.2, presence_throttle=0.0) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada, bob = await register(http), await register(http)
            await create_group(http, ada, bob)
            r = await http.put("/me/privacy", json={"last_seen": "nobody"}, headers=auth(ada))
            assert r.status_code == 200 and r.json()["last_seen"] == "nobody"
            r = await http.get("/me/presence", headers=auth(ada))
            assert r.json()["visibility"] == "nobody"
            async with (
                open_client(node.ws_url, bob.access_token) as b,
                open_client(node.ws_url, ada.access_token),
            ):
                assert await ask(b, ada) == {}  # neither online nor a last seen
                await assert_no_push_of(b, Presence, 0.3)
            # And the other way round: the presence setting is privacy's last_seen.
            r = await http.put("/me/presence", json={"visibility": "contacts"}, headers=auth(ada))
            assert r.status_code == 200
            r = await http.get("/me/profile", headers=auth(ada))
            assert r.json()["privacy"]["last_seen"] == "contacts"
            doc = (await http.get("/openapi.json")).json()
            described = doc["paths"]["/me/privacy"]["put"]["description"]
            assert "online" in described and "/me/presence" in described
