"""Call history storage, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest

from storage.base import Room, RoomMember, Store, User, new_time_id, now_ms
from storage.calls import CallParticipantRecord, CallRecord, calls_store
from storage.errors import NotFound


@pytest.fixture
async def room(store: Store) -> str:
    for name in ("ada", "bob", "cy"):
        await store.create_user(User(name, f"{name}@x.test", name, name, "-", now_ms()))
    members = (RoomMember("ada", "owner"), RoomMember("bob", "member"), RoomMember("cy", "member"))
    stored = await store.create_room(Room("r_g", "group", "g", "ada", now_ms(), members))
    return stored.id


def ringing(
    room: str,
    t: int,
    caller: str = "ada",
    callees: tuple[str, ...] = ("bob", "cy"),
    call_id: str | None = None,
):
    return CallRecord(
        id=call_id or new_time_id("c_"),
        room_id=room,
        caller_id=caller,
        kind="video",
        is_group=True,
        state="ringing",
        outcome=None,
        started_at=t,
        participants=(
            CallParticipantRecord(caller, "joined", "phone", t),
            *(CallParticipantRecord(u, "ringing") for u in callees),
        ),
    )


async def test_a_call_is_stored_and_updated_with_its_participants(store: Store, room: str):
    calls = calls_store(store)
    t = now_ms()
    call = ringing(room, t)
    await calls.insert_call(call)
    assert await calls.get_call(call.id) == call

    answered = replace(
        call,
        state="active",
        answered_at=t + 5,
        participants=(
            call.participants[0],
            CallParticipantRecord("bob", "joined", "laptop", t + 5),
            call.participants[2],
        ),
    )
    await calls.save_call(answered, ["bob"])
    got = await calls.get_call(call.id)
    assert got is not None and (got.state, got.answered_at) == ("active", t + 5)
    assert [(p.user_id, p.status, p.device) for p in got.participants] == [
        ("ada", "joined", "phone"),
        ("bob", "joined", "laptop"),
        ("cy", "ringing", None),
    ]
    assert got.duration_ms is None


async def test_history_lists_my_calls_newest_first_with_paging_and_a_room_filter(
    store: Store, room: str
):
    calls = calls_store(store)
    direct = await store.create_room(
        Room(
            "r_d",
            "direct",
            "",
            "ada",
            now_ms(),
            (RoomMember("ada", "member"), RoomMember("bob", "member")),
            "ada:bob",
        )
    )
    t = now_ms()
    made = []
    # Ids made in one millisecond do not sort by creation: name them in order.
    for i in range(3):
        call = ringing(room, t + i, call_id=f"c_{i}")
        await calls.insert_call(call)
        made.append(call.id)
    solo = ringing(direct.id, t + 10, callees=("bob",), call_id="c_9")
    await calls.insert_call(solo)

    mine = await calls.list_calls("cy", room_id=None, before=None, limit=10)
    assert [c.id for c in mine] == made[::-1]
    page = await calls.list_calls("bob", room_id=None, before=None, limit=2)
    assert [c.id for c in page] == [solo.id, made[2]]
    rest = await calls.list_calls("bob", room_id=None, before=page[-1].id, limit=10)
    assert [c.id for c in rest] == [made[1], made[0]]
    assert [
        c.id for c in await calls.list_calls("bob", room_id=direct.id, before=None, limit=9)
    ] == [solo.id]
    assert await calls.list_calls("nobody", room_id=None, before=None, limit=9) == []
    assert await calls.list_calls("ada", room_id=None, before=None, limit=0) == []


async def test_feedback_is_per_participant_and_survives_later_saves(store: Store, room: str):
    calls = calls_store(store)
    call = ringing(room, now_ms())
    await calls.insert_call(call)
    assert await calls.set_feedback(call.id, "bob", 4, "a bit of echo", 111)
    assert not await calls.set_feedback(call.id, "eve", 5, "", 111)
    assert not await calls.set_feedback("c_nope", "bob", 5, "", 111)
    await calls.save_call(call)  # a later transition rewrites every participant row
    got = await calls.get_call(call.id)
    assert got is not None
    bob = got.participant("bob")
    assert bob is not None and (bob.rating, bob.comment, bob.rated_at) == (4, "a bit of echo", 111)
    assert got.participant("cy").rating is None  # type: ignore[union-attr]


async def test_unfinished_calls_are_ended_as_failed_by_the_start_up_sweep(store: Store, room: str):
    calls = calls_store(store)
    t = now_ms()
    open_call = ringing(room, t)
    await calls.insert_call(open_call)
    done = CallRecord(
        new_time_id("c_"),
        room,
        "ada",
        "audio",
        True,
        "ended",
        "missed",
        t,
        None,
        t + 1,
        (
            CallParticipantRecord("ada", "left", None, t, t + 1),
            CallParticipantRecord("bob", "missed"),
        ),
    )
    await calls.insert_call(done)
    assert await calls.end_unfinished("failed", t + 50) == [open_call.id]
    got = await calls.get_call(open_call.id)
    assert got is not None and (got.state, got.outcome, got.ended_at) == ("ended", "failed", t + 50)
    assert [(p.status, p.left_at) for p in got.participants] == [
        ("left", t + 50),
        ("missed", None),
        ("missed", None),
    ]
    assert await calls.get_call(done.id) == done
    assert await calls.end_unfinished("failed", t + 60) == []


async def test_a_call_in_a_room_that_does_not_exist_is_refused(store: Store, room: str):
    with pytest.raises(NotFound):
        await calls_store(store).insert_call(ringing("r_missing", now_ms()))
    assert await calls_store(store).get_call("c_missing") is None
