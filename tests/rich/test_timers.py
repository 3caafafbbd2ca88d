"""Typing expiry and the presence grace period on virtual time (trio's MockClock).

The trackers' timers are trio sleeps in their own nursery, so these tests
jump the clock instead of waiting. Storage is a real SQLite file: asyncpg's
own (asyncio) timeouts would fire at once on a jumping clock, and the
PostgreSQL paths are covered by the socket tests beside this file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from realtime_server.handlers_typing import TypingTracker
from realtime_server.hub import Hub
from realtime_server.presence import PresenceTracker, RoomMembers, may_see
from realtime_server.session import Session, SessionInfo
from storage.base import Room, RoomMember, Store, User, new_id, now_ms
from storage.presence import presence_store
from storage.sql.factory import open_store


async def users_and_room(store: Store, *names: str) -> tuple[list[str], str]:
    ids = []
    for name in names:
        uid = new_id("u_")
        await store.create_user(User(uid, f"{name}@x.test", name, name, "h", now_ms()))
        ids.append(uid)
    room = await store.create_room(
        Room(
            new_id("r_"),
            "group",
            "g",
            ids[0],
            now_ms(),
            tuple(RoomMember(u, "member") for u in ids),
        )
    )
    return ids, room.id


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path}/t.db") as store:
        await store.migrate()
        yield store


def session(user_id: str, conn_id: int) -> Session:
    stream, _ = trio.testing.memory_stream_pair()
    return Session(SessionInfo(user_id, "s", "d", conn_id), stream, 1 << 20)


async def test_typing_expires_after_its_ttl_unless_refreshed(
    sqlite_store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    store = sqlite_store
    (ada, bob), room = await users_and_room(store, "ada", "bob")
    tracker = TypingTracker(Hub(), RoomMembers(store, 600), ttl=6, throttle=2, per_minute=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(tracker.serve)
        typist = session(ada, 1)
        assert await tracker.start(typist, room) is None
        await trio.sleep(5)
        assert tracker.typing_in(room) == {ada}
        assert await tracker.start(typist, room) is None  # refresh: expires at 11 now
        await trio.sleep(5.5)
        assert tracker.typing_in(room) == {ada}
        await trio.sleep(1)
        assert tracker.typing_in(room) == set()
        # on, on again (the refresh came after the throttle window), off.
        assert tracker.broadcasts == 3
        nursery.cancel_scope.cancel()


async def test_the_last_device_leaving_goes_offline_only_after_the_grace_period(
    sqlite_store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    store = sqlite_store
    (ada, bob), _ = await users_and_room(store, "ada", "bob")
    tracker = PresenceTracker(store, Hub(), grace=5, throttle=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(tracker.serve)
        tracker.session_up(ada)
        tracker.session_down(ada)
        await trio.sleep(4.9)
        assert tracker.is_online(ada)
        tracker.session_up(ada)  # back in time: the departure never happened
        await trio.sleep(60)
        assert tracker.is_online(ada)
        tracker.session_down(ada)
        await trio.sleep(5.1)
        assert not tracker.is_online(ada)
        settings = presence_store(store)
        for _ in range(100):  # the write runs in storage's thread / loop
            if (await settings.presence_settings([ada]))[ada].last_seen is not None:
                break
            await trio.sleep(0.1)
        assert (await settings.presence_settings([ada]))[ada].last_seen is not None
        nursery.cancel_scope.cancel()


def test_who_may_see_presence() -> None:
    assert may_see("everyone", is_contact=False, shares_room=True)
    assert may_see("everyone", is_contact=True, shares_room=False)
    assert not may_see("everyone", is_contact=False, shares_room=False)
    assert may_see("contacts", is_contact=True, shares_room=False)
    assert not may_see("contacts", is_contact=False, shares_room=True)
    assert not may_see("nobody", is_contact=True, shares_room=True)
