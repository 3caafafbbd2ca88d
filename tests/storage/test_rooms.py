"""Rooms, members, read cursors and "my rooms", on both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from storage.base import Room, RoomMember, Store, StoredMessage, User, new_id, now_ms
from storage.errors import Conflict, NotFound

TIMEOUT = 15
# Shapes of the builder fixtures in tests/storage/conftest.py.
MakeUser = Callable[[str], Awaitable[User]]
MakeRoom = Callable[..., Awaitable[Room]]
Msg = Callable[..., StoredMessage]


def direct_room(a: str, b: str, *, room_id: str | None = None) -> Room:
    low, high = sorted((a, b))
    return Room(
        id=room_id or new_id("r_"),
        kind="direct",
        name="",
        created_by=a,
        created_at=now_ms(),
        members=(RoomMember(a, "member"), RoomMember(b, "member")),
        direct_key=f"{low}:{high}",
    )


async def test_create_and_get_room_with_members(store: Store, make_user: MakeUser) -> None:
    with trio.fail_after(TIMEOUT):
        alice, bob = await make_user("alice"), await make_user("bob")
        room = Room(
            id=new_id("r_"),
            kind="group",
            name="Team",
            created_by=alice.id,
            created_at=now_ms(),
            members=(RoomMember(alice.id, "owner"), RoomMember(bob.id, "member", read_seq=0)),
        )
        created = await store.create_room(room)
        assert created.id == room.id
        assert created.direct_key is None
        assert {m.user_id: m.role for m in created.members} == {alice.id: "owner", bob.id: "member"}

        fetched = await store.get_room(room.id)
        assert fetched == created
        assert await store.get_room(new_id("r_")) is None


async def test_direct_room_is_idempotent_by_direct_key(store: Store, make_user: MakeUser) -> None:
    with trio.fail_after(TIMEOUT):
        alice, bob = await make_user("alice"), await make_user("bob")
        first = await store.create_room(direct_room(alice.id, bob.id))
        # Bob asks for the same pair, with a fresh id: he gets the existing room.
        again = await store.create_room(direct_room(bob.id, alice.id))
        assert again == first
        assert first.kind == "direct"
        assert {m.user_id for m in first.members} == {alice.id, bob.id}
        rooms = await store.list_rooms(alice.id, limit=10, offset=0)
        assert [s.room.id for s in rooms] == [first.id]


async def test_concurrent_direct_room_creation_yields_one_room(
    store: Store, make_user: MakeUser
) -> None:
    with trio.fail_after(TIMEOUT):
        alice, bob = await make_user("alice"), await make_user("bob")
        results: list[Room] = []

        async def create() -> None:
            results.append(await store.create_room(direct_room(alice.id, bob.id)))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(create)
        assert len({r.id for r in results}) == 1


async def test_duplicate_room_id_is_a_conflict(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = await make_room(alice)
        with pytest.raises(Conflict) as info:
            await store.create_room(room)
        assert info.value.field == "id"


async def test_room_with_unknown_member_is_not_created(store: Store, make_user: MakeUser) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = Room(
            new_id("r_"),
            "group",
            "g",
            alice.id,
            now_ms(),
            (RoomMember(alice.id, "owner"), RoomMember(new_id("u_"), "member")),
        )
        with pytest.raises(NotFound):
            await store.create_room(room)
        # Room and members are one transaction: no half-made room remains.
        assert await store.get_room(room.id) is None


async def test_set_read_seq_never_moves_back(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = await make_room(alice)
        assert await store.set_read_seq(room.id, alice.id, 5) == 5
        assert await store.set_read_seq(room.id, alice.id, 3) == 5
        assert await store.set_read_seq(room.id, alice.id, 9) == 9
        fetched = await store.get_room(room.id)
        assert fetched is not None and fetched.members[0].read_seq == 9
        with pytest.raises(NotFound):
            await store.set_read_seq(room.id, new_id("u_"), 1)


async def test_list_rooms_most_recent_activity_first(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice, bob = await make_user("alice"), await make_user("bob")
        t0 = now_ms()
        old = await make_room(alice, bob, name="old", created_at=t0 - 3000)
        quiet = await make_room(alice, name="quiet", created_at=t0 - 2000)
        new = await make_room(alice, bob, name="new", created_at=t0 - 1000)
        await make_room(bob, name="not mine", created_at=t0)
        # The oldest room gets the newest message, so it moves to the top.
        await store.insert_messages([msg(old, 1, bob, created_at=t0 + 10)])

        rooms = await store.list_rooms(alice.id, limit=10, offset=0)
        assert [s.room.name for s in rooms] == ["old", "new", "quiet"]
        assert [s.last_seq for s in rooms] == [1, 0, 0]
        assert rooms[0].last_message is not None and rooms[0].last_message.seq == 1
        assert rooms[1].last_message is None
        assert {m.user_id for m in rooms[0].room.members} == {alice.id, bob.id}
        assert rooms[2].room == quiet
        assert rooms[1].room == new

        page = await store.list_rooms(alice.id, limit=2, offset=1)
        assert [s.room.name for s in page] == ["new", "quiet"]
        assert await store.list_rooms(alice.id, limit=0, offset=0) == []
        assert await store.list_rooms(new_id("u_"), limit=10, offset=0) == []


async def test_list_rooms_last_message_and_unread(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice, bob = await make_user("alice"), await make_user("bob")
        room = await make_room(alice, bob)
        await store.insert_messages(
            [msg(room, 1, bob), msg(room, 2, alice), msg(room, 3, bob), msg(room, 4, bob)]
        )
        await store.set_read_seq(room.id, alice.id, 1)

        (mine,) = await store.list_rooms(alice.id, limit=10, offset=0)
        # seq 2 is alice's own message: never unread for her.
        assert mine.unread == 2
        assert mine.last_seq == 4
        assert mine.last_message is not None
        assert (mine.last_message.seq, mine.last_message.sender_id) == (4, bob.id)
        (his,) = await store.list_rooms(bob.id, limit=10, offset=0)
        assert his.unread == 1

        await store.set_read_seq(room.id, alice.id, 4)
        (mine,) = await store.list_rooms(alice.id, limit=10, offset=0)
        assert mine.unread == 0
        member = {m.user_id: m for m in mine.room.members}[alice.id]
        assert member.read_seq == 4
