"""Messages: all-or-nothing batches, idempotency keys, history paging; both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from storage.base import Room, Store, StoredMessage, User, new_id
from storage.errors import Conflict, NotFound

TIMEOUT = 15
MakeUser = Callable[[str], Awaitable[User]]
MakeRoom = Callable[..., Awaitable[Room]]
Msg = Callable[..., StoredMessage]


async def seqs(store: Store, room: Room) -> list[int]:
    return [m.seq for m in await store.messages_after(room.id, 0, 1000)]


async def test_insert_and_read_back(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = await make_room(alice)
        batch = [msg(room, i, alice) for i in (1, 2, 3)]
        await store.insert_messages(batch)

        assert await store.messages_after(room.id, 0, 10) == batch
        assert await store.last_seq(room.id) == 3
        await store.insert_messages([])  # a no-op, not an error


async def test_batch_with_one_duplicate_seq_stores_nothing(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room, other = await make_room(alice), await make_room(alice)
        await store.insert_messages([msg(room, 1, alice), msg(room, 2, alice)])

        batch = [msg(other, 1, alice), msg(room, 3, alice), msg(room, 2, alice, cid="fresh")]
        with pytest.raises(Conflict) as info:
            await store.insert_messages(batch)
        assert info.value.field == "seq"
        assert await seqs(store, room) == [1, 2]
        assert await seqs(store, other) == []
        assert await store.last_seq(room.id) == 2
        assert await store.last_seq(other.id) == 0


async def test_duplicate_seq_within_one_batch(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = await make_room(alice)
        with pytest.raises(Conflict) as info:
            await store.insert_messages([msg(room, 1, alice), msg(room, 1, alice, cid="x")])
        assert info.value.field == "seq"
        assert await seqs(store, room) == []


async def test_same_sender_and_cid_is_a_conflict(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice, bob = await make_user("alice"), await make_user("bob")
        room, other = await make_room(alice, bob), await make_room(alice)
        await store.insert_messages([msg(room, 1, alice, cid="k")])

        with pytest.raises(Conflict) as info:
            await store.insert_messages([msg(room, 2, alice, cid="k")])
        assert info.value.field == "cid"
        # The key is (room, sender, cid): another sender or room may reuse it.
        await store.insert_messages([msg(room, 2, bob, cid="k"), msg(other, 1, alice, cid="k")])
        assert await seqs(store, room) == [1, 2]


async def test_duplicate_message_id_is_a_conflict(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = await make_room(alice)
        first = msg(room, 1, alice)
        await store.insert_messages([first])
        clash = StoredMessage(first.id, room.id, 2, alice.id, "other", "x", first.created_at)
        with pytest.raises(Conflict) as info:
            await store.insert_messages([clash])
        assert info.value.field == "id"


async def test_message_for_unknown_room_is_not_found(
    store: Store, make_user: MakeUser, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        with pytest.raises(NotFound):
            await store.insert_messages([msg(new_id("r_"), 1, alice)])


async def test_find_by_cids(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice, bob = await make_user("alice"), await make_user("bob")
        room, other = await make_room(alice, bob), await make_room(alice)
        a1, b1 = msg(room, 1, alice, cid="x"), msg(room, 2, bob, cid="x")
        a2 = msg(room, 3, alice, cid="y")
        await store.insert_messages([a1, b1, a2, msg(other, 1, alice, cid="z")])

        keys = [(alice.id, "x"), (bob.id, "x"), (alice.id, "z"), (bob.id, "nope"), (alice.id, "x")]
        found = await store.find_by_cids(room.id, keys)
        assert found == {(alice.id, "x"): a1, (bob.id, "x"): b1}
        assert await store.find_by_cids(room.id, []) == {}


async def test_find_by_cids_with_many_keys(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    # More keys than one SQLite statement binds by our chunk size.
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = await make_room(alice)
        batch = [msg(room, i, alice, cid=f"c{i}") for i in range(1, 1001)]
        await store.insert_messages(batch)
        found = await store.find_by_cids(room.id, [(alice.id, f"c{i}") for i in range(1, 1201)])
        assert len(found) == 1000
        assert found[(alice.id, "c777")] == batch[776]


async def test_messages_after_and_before(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room, other = await make_room(alice), await make_room(alice)
        # Inserted out of order: reads must order by seq, not insertion.
        await store.insert_messages([msg(room, i, alice) for i in (5, 1, 4, 2, 3, 6)])
        await store.insert_messages([msg(other, i, alice) for i in (1, 2, 3)])

        async def after(seq: int, limit: int) -> list[int]:
            return [m.seq for m in await store.messages_after(room.id, seq, limit)]

        async def before(seq: int, limit: int) -> list[int]:
            return [m.seq for m in await store.messages_before(room.id, seq, limit)]

        assert await after(0, 100) == [1, 2, 3, 4, 5, 6]
        assert await after(2, 3) == [3, 4, 5]
        assert await after(6, 10) == []
        assert await after(0, 0) == []
        assert await before(5, 2) == [3, 4]
        assert await before(100, 3) == [4, 5, 6]
        assert await before(3, 10) == [1, 2]
        assert await before(1, 10) == []
        assert await before(5, 0) == []
        assert await store.messages_after(new_id("r_"), 0, 10) == []


async def test_last_seq(store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room, other = await make_room(alice), await make_room(alice)
        assert await store.last_seq(room.id) == 0
        assert await store.last_seq(new_id("r_")) == 0
        # One batch spanning rooms advances each room's tip.
        await store.insert_messages(
            [
                msg(room, 1, alice),
                msg(other, 1, alice),
                msg(room, 2, alice),
                msg(other, 2, alice),
                msg(other, 3, alice),
            ]
        )
        assert await store.last_seq(room.id) == 2
        assert await store.last_seq(other.id) == 3
