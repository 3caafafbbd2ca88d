"""CallActor timers on virtual time: ring timeout, reconnect grace, restart from storage.

The actor, its rules, the registry, the room actor that stores the missed-call
message and the store are all real; only the sessions are stand-ins that
record what they are sent. Time is trio's MockClock, moved by hand with
``clock.jump``: the store does real I/O on worker threads, and autojump would
advance the clock while a write is in flight (firing a 45 s ring timer in the
middle of an answer). Moving it only when the test says makes every timer
fire exactly where the specification puts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import pytest
import trio
import trio.testing

from actors.call import CALL, Accept, CallActor, CallDeps, Decline, Join, Start
from actors.call_registry import CallRegistry
from actors.room import ROOM, RoomActor, RoomDeps
from actors.runtime import ActorSystem
from protocol import codec
from protocol import frames_calls as fc
from protocol.frames import Err, MsgNew, Ok
from realtime_server.hub import Hub
from realtime_server.session import SessionInfo
from storage.base import Room, RoomMember, Store, User, new_time_id, now_ms
from storage.calls import CallParticipantRecord, CallRecord, calls_store
from storage.sql.writer import MessageWriter

RING = 45.0
GRACE = 15.0
F = TypeVar("F")


class RecordingSession:
    """Stands in for a connected device: keeps every frame it is sent, decoded."""

    _ids = iter(range(1, 1_000_000))

    def __init__(self, user: str, device: str) -> None:
        self.info = SessionInfo(user, "s_" + device, device, next(self._ids))
        self.user_id = user
        self.syncing = False
        self.closed = trio.Event()
        self.frames: list[Any] = []
        self._seen = 0
        self._arrived = trio.Event()

    def push(self, data: bytes) -> None:
        self._record(codec.decode_server(data))

    def push_frame(self, frame: msgspec.Struct) -> None:
        self._record(frame)

    def push_event(self, room: str, seq: int, data: bytes) -> None:
        self.push(data)

    def _record(self, frame: Any) -> None:
        self.frames.append(frame)
        self._arrived.set()

    async def next(self, kind: type[F]) -> F:
        """The next frame not yet read; fails if it is not a ``kind``."""
        while self._seen >= len(self.frames):
            self._arrived = trio.Event()
            await self._arrived.wait()
        frame = self.frames[self._seen]
        self._seen += 1
        assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame!r}"
        return frame

    async def state(self, event: str) -> fc.CallStateData:
        frame = await self.next(fc.CallStateFrame)
        assert frame.d.event == event, frame.d
        return frame.d

    def nothing_new(self) -> bool:
        return self._seen == len(self.frames)


@dataclass
class World:
    system: ActorSystem
    hub: Hub
    store: Store
    room: str
    ada: RecordingSession
    bob_phone: RecordingSession
    bob_laptop: RecordingSession

    def connect(self, user: str, device: str) -> RecordingSession:
        session = RecordingSession(user, device)
        self.hub.add(session)  # type: ignore[arg-type]
        return session

    async def tell(self, call_id: str, msg: Any) -> None:
        await self.system.ref(CALL, call_id).tell(msg)


@pytest.fixture
async def world(store: Store, nursery: trio.Nursery) -> AsyncIterator[World]:
    for name in ("ada", "bob"):
        await store.create_user(User(name, f"{name}@x.test", name, name, "-", now_ms()))
    room = await store.create_room(
        Room(
            "r_ab",
            "direct",
            "",
            "ada",
            now_ms(),
            (RoomMember("ada", "member"), RoomMember("bob", "member")),
            "ada:bob",
        )
    )
    writer = MessageWriter(store)
    await nursery.start(writer.serve)
    system = ActorSystem(idle_seconds=0)
    await nursery.start(system.serve)
    registry = CallRegistry()
    await nursery.start(registry.serve)
    hub = Hub()
    room_deps = RoomDeps(store=store, writer=writer, hub=hub, frame=lambda b: b)
    system.register(ROOM, lambda key, ref: RoomActor(key, ref, room_deps))
    deps = CallDeps(
        store=store,
        calls=calls_store(store),
        hub=hub,
        registry=registry,
        system=system,
        frame=lambda b: b,
        ice_servers=lambda user: [],
        ring_seconds=RING,
        reconnect_grace=GRACE,
    )
    system.register(CALL, lambda key, ref: CallActor(key, ref, deps))
    w = World(system, hub, store, room.id, None, None, None)  # type: ignore[arg-type]
    w.ada = w.connect("ada", "ada-phone")
    w.bob_phone = w.connect("bob", "phone")
    w.bob_laptop = w.connect("bob", "laptop")
    yield w


async def ring_bob(w: World) -> str:
    call_id = new_time_id("c_")
    await w.tell(call_id, Start(w.ada, 1, room=w.room, kind="video"))
    ok = await w.ada.next(fc.CallOk)
    assert ok.d.id == call_id
    await w.ada.state("started")
    for device in (w.bob_phone, w.bob_laptop):
        await device.next(fc.CallRing)
    return call_id


async def test_an_unanswered_call_is_missed_exactly_at_the_ring_time(
    world: World, mock_clock: trio.testing.MockClock
):
    call_id = await ring_bob(world)
    mock_clock.jump(RING - 0.001)
    await trio.testing.wait_all_tasks_blocked()
    assert world.ada.nothing_new() and world.bob_phone.nothing_new()

    mock_clock.jump(0.001)
    ended = await world.ada.state("ended")
    assert (ended.call.outcome, ended.call.state) == ("missed", "ended")
    for device in (world.bob_phone, world.bob_laptop):
        assert (await device.state("ended")).call.outcome == "missed"
        notice = await device.next(fc.CallMissed)
        assert (notice.d.call, notice.d.caller, notice.d.kind) == (call_id, "ada", "video")
        message = (await device.next(MsgNew)).d
        assert (message.sender, message.kind, message.cid) == (
            "system",
            "system",
            f"call:{call_id}:missed",
        )
    stored = await calls_store(world.store).get_call(call_id)
    assert stored is not None and (stored.outcome, stored.answered_at) == ("missed", None)
    assert [(p.user_id, p.status) for p in stored.participants] == [
        ("ada", "left"),
        ("bob", "missed"),
    ]


async def test_an_answer_stops_the_ring_timer(world: World, mock_clock: trio.testing.MockClock):
    call_id = await ring_bob(world)
    mock_clock.jump(RING / 2)
    await world.tell(call_id, Accept(world.bob_laptop, 2))
    assert (await world.bob_laptop.next(fc.CallOk)).d.state == "active"
    for device in (world.ada, world.bob_phone, world.bob_laptop):
        assert (await device.state("joined")).user == "bob"
    mock_clock.jump(10 * RING)
    await trio.testing.wait_all_tasks_blocked()
    assert world.ada.nothing_new() and world.bob_phone.nothing_new()
    stored = await calls_store(world.store).get_call(call_id)
    assert stored is not None and stored.state == "active"


async def test_a_dropped_device_has_the_grace_period_to_come_back(
    world: World, mock_clock: trio.testing.MockClock
):
    call_id = await ring_bob(world)
    await world.tell(call_id, Accept(world.bob_phone, 2))
    await world.bob_phone.next(fc.CallOk)
    await world.ada.state("joined")

    world.bob_phone.closed.set()  # the socket went away
    assert (await world.ada.state("reconnecting")).user == "bob"
    mock_clock.jump(GRACE - 1)
    await trio.testing.wait_all_tasks_blocked()
    assert world.ada.nothing_new()

    tablet = world.connect("bob", "tablet")
    await world.tell(call_id, Join(tablet, 3))
    assert (await tablet.next(fc.CallOk)).d.state == "active"
    rejoined = await world.ada.state("rejoined")
    assert {p.user: p.device for p in rejoined.call.participants}["bob"] == "tablet"
    mock_clock.jump(10 * GRACE)
    await trio.testing.wait_all_tasks_blocked()
    assert world.ada.nothing_new()


async def test_a_device_that_does_not_come_back_leaves_when_the_grace_ends(
    world: World, mock_clock: trio.testing.MockClock
):
    call_id = await ring_bob(world)
    await world.tell(call_id, Accept(world.bob_phone, 2))
    await world.ada.state("joined")
    world.bob_phone.closed.set()
    await world.ada.state("reconnecting")
    mock_clock.jump(GRACE)
    ended = await world.ada.state("ended")
    assert (ended.user, ended.call.outcome) == ("bob", "answered")
    stored = await calls_store(world.store).get_call(call_id)
    assert stored is not None and stored.duration_ms is not None


async def test_a_call_left_unfinished_in_storage_ends_as_failed_when_addressed(
    world: World, mock_clock: trio.testing.MockClock
):
    # What a crashed actor (or a stopped node) leaves behind: an active row.
    call_id = new_time_id("c_")
    t = now_ms()
    await calls_store(world.store).insert_call(
        CallRecord(
            call_id,
            world.room,
            "ada",
            "audio",
            False,
            "active",
            None,
            t,
            t + 1,
            participants=(
                CallParticipantRecord("ada", "joined", "ada-phone", t),
                CallParticipantRecord("bob", "joined", "phone", t + 1),
            ),
        )
    )
    await world.tell(call_id, Join(world.bob_phone, 9))
    # Everyone involved hears that it ended; the request is refused.
    assert (await world.ada.state("ended")).call.outcome == "failed"
    assert (await world.bob_phone.state("ended")).call.outcome == "failed"
    err = await world.bob_phone.next(Err)
    assert (err.code, err.re) == ("call_ended", 9)
    stored = await calls_store(world.store).get_call(call_id)
    assert stored is not None and (stored.state, stored.outcome) == ("ended", "failed")


async def test_requests_for_an_unknown_call_get_not_found(
    world: World, mock_clock: trio.testing.MockClock
):
    await world.tell("c_unknown", Accept(world.bob_phone, 4))
    err = await world.bob_phone.next(Err)
    assert (err.code, err.re) == ("not_found", 4)
    assert not world.system.is_live(CALL, "c_unknown")


async def test_the_ok_for_a_decline_precedes_its_state(
    world: World, mock_clock: trio.testing.MockClock
):
    call_id = await ring_bob(world)
    await world.tell(call_id, Decline(world.bob_laptop, 5))
    assert (await world.bob_laptop.next(Ok)).re == 5
    assert (await world.bob_laptop.state("ended")).call.outcome == "declined"
