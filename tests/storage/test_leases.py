"""Room leases (issue 13): one writer per room, and a writer that lost its
room can never commit for it. On both databases: the SQL is written once."""

from __future__ import annotations

import pytest
import trio

from storage.base import Store
from storage.errors import Fenced
from storage.fence import ROOM_FENCE
from storage.leases import Holder, Leases
from storage.sql.store import SqlStore
from tests.storage.conftest import MakeRoom, MakeUser, message


def leases_of(store: Store) -> Leases:
    assert isinstance(store, SqlStore)
    return Leases(store.db)


async def test_the_first_claimer_holds_a_room_and_a_live_holder_keeps_it(store: Store) -> None:
    leases = leases_of(store)
    await leases.renew("a", 5)
    await leases.renew("b", 5)
    assert await leases.claim("r1", "a") == Holder("a", 1)
    assert await leases.claim("r1", "b") == Holder("a", 1)
    # Claiming again what one holds keeps the token: an actor restarted on
    # the same node is the same writer.
    assert await leases.claim("r1", "a") == Holder("a", 1)
    assert await leases.holder("r1") == Holder("a", 1)


async def test_a_room_moves_when_its_holder_stops_renewing_and_the_token_grows(
    store: Store,
) -> None:
    leases = leases_of(store)
    await leases.renew("a", 0.05)
    await leases.renew("b", 5)
    assert await leases.claim("r1", "a") == Holder("a", 1)
    await trio.sleep(0.1)  # the database's clock moves on: "a" is silent
    assert not await leases.alive("a") and await leases.alive("b")
    assert await leases.claim("r1", "b") == Holder("b", 2)
    # "a" comes back: its renewal says it had lapsed, and the room stays with b.
    assert await leases.renew("a", 5) is False
    assert await leases.claim("r1", "a") == Holder("b", 2)


async def test_a_batch_under_a_lost_lease_stores_nothing(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    leases = leases_of(store)
    alice = await make_user("alice")
    room = await make_room(alice)
    await leases.renew("a", 0.05)
    await leases.renew("b", 5)
    old = await leases.claim(room.id, "a")
    await store.insert_messages([message(room, 1, alice)], {room.id: old.token})
    await trio.sleep(0.1)
    new = await leases.claim(room.id, "b")
    with pytest.raises(Fenced) as refused:
        await store.insert_messages([message(room, 2, alice)], {room.id: old.token})
    assert refused.value.rooms == [room.id]
    assert await store.last_seq(room.id) == 1
    await store.insert_messages([message(room, 2, alice)], {room.id: new.token})
    assert await store.last_seq(room.id) == 2


async def test_one_lost_room_refuses_the_whole_combined_batch(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    leases = leases_of(store)
    alice = await make_user("alice")
    kept, lost = await make_room(alice), await make_room(alice)
    await leases.renew("a", 5)
    k = await leases.claim(kept.id, "a")
    lost_token = (await leases.claim(lost.id, "a")).token
    await leases.release("a")  # both rooms free now; "b" takes one
    await leases.renew("b", 5)
    await leases.renew("a", 5)
    await leases.claim(lost.id, "b")
    k = await leases.claim(kept.id, "a")
    with pytest.raises(Fenced) as refused:
        await store.insert_messages(
            [message(kept, 1, alice), message(lost, 1, alice)],
            {kept.id: k.token, lost.id: lost_token},
        )
    assert refused.value.rooms == [lost.id]
    assert await store.last_seq(kept.id) == 0 and await store.last_seq(lost.id) == 0


async def test_every_write_of_a_fenced_task_checks_the_lease(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    assert isinstance(store, SqlStore)
    leases = leases_of(store)
    alice = await make_user("alice")
    room = await make_room(alice)
    await leases.renew("a", 5)
    holder = await leases.claim(room.id, "a")
    token = ROOM_FENCE.set((room.id, holder.token + 1))  # a token this node no longer has
    try:
        with pytest.raises(Fenced):
            await store.db.execute("UPDATE rooms SET name = 'x' WHERE id = ?", (room.id,))
        # Reads are not fenced: a follower may read.
        assert await store.db.fetchval("SELECT name FROM rooms WHERE id = ?", (room.id,)) == "room"
    finally:
        ROOM_FENCE.reset(token)
    token = ROOM_FENCE.set((room.id, holder.token))
    try:
        assert await store.db.execute("UPDATE rooms SET name = 'y' WHERE id = ?", (room.id,)) == 1
    finally:
        ROOM_FENCE.reset(token)
