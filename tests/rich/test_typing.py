"""Typing indicators over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
import trio

from protocol.client import Client, ServerError, open_client
from protocol.frames import Ok
from protocol.frames_presence import Typing, TypingData, TypingStart, TypingStop
from realtime_server.node import Node
from tests.conftest import NodeFactory
from tests.e2e.helpers import auth, create_group, login, register
from tests.rich.live import assert_no_push_of, next_of


async def start(client: Client, room: str) -> None:
    assert isinstance(await client.request(TypingStart(id=0, d=TypingData(room=room))), Ok)


async def stop(client: Client, room: str) -> None:
    assert isinstance(await client.request(TypingStop(id=0, d=TypingData(room=room))), Ok)


async def test_only_other_members_see_typing_start_and_stop(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, eve = await register(http), await register(http), await register(http)
    room = await create_group(http, ada, bob)
    laptop = await login(http, ada, "laptop")
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, laptop, device="laptop") as a2,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, eve.access_token) as e,
    ):
        await start(a, room)
        got = await next_of(b, Typing)
        assert (got.d.room, got.d.user, got.d.on) == (room, ada.id, True)
        await stop(a, room)
        got = await next_of(b, Typing)
        assert (got.d.user, got.d.on) == (ada.id, False)
        # Not a member: not told, and may not type there.
        await assert_no_push_of(e, Typing, 0.2)
        with pytest.raises(ServerError) as err:
            await e.request(TypingStart(id=0, d=TypingData(room=room)))
        assert err.value.code == "not_member"
        # The typer's own other device is not told either.
        await assert_no_push_of(a2, Typing, 0.1)
        # A stop with nothing started is harmless.
        await stop(b, room)
        await assert_no_push_of(a, Typing, 0.1)


async def test_typing_is_throttled_and_expires_on_its_own(node_factory: NodeFactory) -> None:
    async with node_factory(typing_ttl=0.6, typing_throttle=5.0) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada, bob = await register(http), await register(http)
            room = await create_group(http, ada, bob)
        async with (
            open_client(node.ws_url, ada.access_token) as a,
            open_client(node.ws_url, bob.access_token) as b,
        ):
            t0 = trio.current_time()
            await start(a, room)
            await start(a, room)  # within the throttle window: acked, not re-sent
            await start(a, room)
            assert (await next_of(b, Typing)).d.on is True
            got = await next_of(b, Typing, timeout=3)
            # No second "on": the next typing frame is the expiry.
            assert got.d.on is False and got.d.user == ada.id
            assert trio.current_time() - t0 >= 0.6
            assert node.gateway.services.typing.typing_in(room) == set()


async def test_typing_is_cleared_when_the_typing_device_disconnects(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await register(http), await register(http)
    room = await create_group(http, ada, bob)
    async with open_client(node.ws_url, bob.access_token) as b:
        async with open_client(node.ws_url, ada.access_token) as a:
            await start(a, room)
            assert (await next_of(b, Typing)).d.on is True
        got = await next_of(b, Typing, timeout=2)  # long before the TTL
        assert (got.d.user, got.d.on) == (ada.id, False)
    assert node.gateway.services.typing.typing_in(room) == set()


async def test_a_typing_flood_is_refused_and_others_are_unaffected(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(typing_max_per_minute=5) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada, bob = await register(http), await register(http)
            room = await create_group(http, ada, bob)
        async with (
            open_client(node.ws_url, ada.access_token) as a,
            open_client(node.ws_url, bob.access_token) as b,
        ):
            tracker = node.gateway.services.typing
            for _ in range(5):
                await start(a, room)
            sent = tracker.broadcasts
            for frame in (TypingStart, TypingStop):
                with pytest.raises(ServerError) as err:
                    await a.request(frame(id=0, d=TypingData(room=room)))
                assert err.value.code == "rate_limited"
            # Refused frames changed nothing: still typing, nothing broadcast.
            assert tracker.broadcasts == sent
            assert tracker.typing_in(room) == {ada.id}
            # The flooder's other requests and other users work as before.
            assert await a.ping() > 0
            await start(b, room)
            assert (await next_of(a, Typing)).d.user == bob.id


async def test_typing_needs_no_database_query_per_event(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await register(http), await register(http)
    room = await create_group(http, ada, bob)
    async with open_client(node.ws_url, ada.access_token) as a:
        await start(a, room)  # loads the member list once
        calls = 0
        original = node.store.get_room

        async def counting(room_id: str):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return await original(room_id)

        node.store.get_room = counting  # type: ignore[method-assign]
        try:
            for _ in range(20):
                await start(a, room)
                await stop(a, room)
        finally:
            node.store.get_room = original  # type: ignore[method-assign]
        assert calls == 0
    r = await http.get(f"/rooms/{room}", headers=auth(ada))
    assert r.status_code == 200
