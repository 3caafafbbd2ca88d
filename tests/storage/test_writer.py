"""MessageWriter: group commit, per-job failure isolation, shutdown; both backends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence

import pytest
import trio
import trio.testing

from storage.base import Room, Store, StoredMessage, User
from storage.errors import Conflict, StoreError
from storage.sql.writer import MessageWriter

TIMEOUT = 15
MakeUser = Callable[[str], Awaitable[User]]
MakeRoom = Callable[..., Awaitable[Room]]
Msg = Callable[..., StoredMessage]


class Outcomes:
    """Collects on_done calls per job name and wakes the test when all are in."""

    def __init__(self, expected: int) -> None:
        self.results: dict[str, BaseException | None] = {}
        self.calls: Counter[str] = Counter()
        self._expected = expected
        self.all_done = trio.Event()

    def callback(self, name: str) -> Callable[[BaseException | None], None]:
        def on_done(exc: BaseException | None) -> None:
            self.calls[name] += 1
            self.results[name] = exc
            if len(self.results) == self._expected:
                self.all_done.set()

        return on_done


class GatedStore:
    """Wraps a store so each insert_messages waits for the test to open the gate."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.gate = trio.Event()
        self.entered = trio.Event()

    async def insert_messages(
        self, messages: Sequence[StoredMessage], fences: Mapping[str, int] | None = None
    ) -> None:
        self.entered.set()
        await self.gate.wait()
        await self._store.insert_messages(messages, fences)


async def test_queued_submits_are_committed_in_one_insert(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        rooms = [await make_room(alice) for _ in range(5)]
        writer = MessageWriter(store)
        outcomes = Outcomes(expected=5)
        # Submitted before serve starts: all are queued when the first round runs.
        for i, room in enumerate(rooms):
            batch = [msg(room, seq, alice) for seq in range(1, i + 2)]
            writer.submit_nowait(batch, outcomes.callback(room.id))
        assert writer.statistics().queued == 5

        async with trio.open_nursery() as nursery:
            await nursery.start(writer.serve)
            await outcomes.all_done.wait()
            nursery.cancel_scope.cancel()

        assert outcomes.results == {room.id: None for room in rooms}
        stats = writer.statistics()
        assert (stats.batches, stats.rows, stats.jobs, stats.failures) == (1, 15, 5, 0)
        for i, room in enumerate(rooms):
            assert await store.last_seq(room.id) == i + 1


async def test_jobs_arriving_during_a_write_share_the_next_one(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        rooms = [await make_room(alice) for _ in range(4)]
        gated = GatedStore(store)
        writer = MessageWriter(gated)  # type: ignore[arg-type]  # only insert_messages is used
        outcomes = Outcomes(expected=4)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.serve)
            writer.submit_nowait([msg(rooms[0], 1, alice)], outcomes.callback("first"))
            await gated.entered.wait()
            for i, room in enumerate(rooms[1:]):
                writer.submit_nowait([msg(room, 1, alice)], outcomes.callback(f"later{i}"))
            gated.gate.set()
            await outcomes.all_done.wait()
            nursery.cancel_scope.cancel()
        assert all(exc is None for exc in outcomes.results.values())
        assert writer.statistics().batches == 2


async def test_a_conflicting_job_fails_alone(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        clash, ok1, ok2 = [await make_room(alice) for _ in range(3)]
        await store.insert_messages([msg(clash, 1, alice)])
        writer = MessageWriter(store)
        outcomes = Outcomes(expected=3)
        writer.submit_nowait([msg(ok1, 1, alice), msg(ok1, 2, alice)], outcomes.callback("ok1"))
        writer.submit_nowait(
            [msg(clash, 2, alice), msg(clash, 1, alice, cid="dup")], outcomes.callback("clash")
        )
        writer.submit_nowait([msg(ok2, 1, alice)], outcomes.callback("ok2"))

        async with trio.open_nursery() as nursery:
            await nursery.start(writer.serve)
            await outcomes.all_done.wait()
            nursery.cancel_scope.cancel()

        assert outcomes.results["ok1"] is None
        assert outcomes.results["ok2"] is None
        error = outcomes.results["clash"]
        assert isinstance(error, Conflict) and error.field == "seq"
        assert outcomes.calls == {"ok1": 1, "clash": 1, "ok2": 1}
        assert await store.last_seq(ok1.id) == 2
        assert await store.last_seq(ok2.id) == 1
        # The clashing job stored none of its rows, not even the good seq 2.
        assert await store.last_seq(clash.id) == 1
        stats = writer.statistics()
        assert (stats.jobs, stats.failures, stats.rows) == (2, 1, 3)


async def test_max_batch_splits_rounds_without_splitting_jobs(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        rooms = [await make_room(alice) for _ in range(3)]
        writer = MessageWriter(store, max_batch=3)
        outcomes = Outcomes(expected=3)
        for room in rooms:
            writer.submit_nowait(
                [msg(room, 1, alice), msg(room, 2, alice)], outcomes.callback(room.id)
            )
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.serve)
            await outcomes.all_done.wait()
            nursery.cancel_scope.cancel()
        # 2 + 2 > 3, so every job gets a round of its own.
        assert writer.statistics().batches == 3
        assert all(exc is None for exc in outcomes.results.values())


async def test_a_raising_callback_does_not_stop_the_writer(
    store: Store,
    make_user: MakeUser,
    make_room: MakeRoom,
    msg: Msg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = await make_room(alice)
        writer = MessageWriter(store)
        outcomes = Outcomes(expected=1)

        def explode(exc: BaseException | None) -> None:
            raise RuntimeError("callback bug")

        async with trio.open_nursery() as nursery:
            await nursery.start(writer.serve)
            writer.submit_nowait([msg(room, 1, alice)], explode)
            writer.submit_nowait([msg(room, 2, alice)], outcomes.callback("after"))
            await outcomes.all_done.wait()
            nursery.cancel_scope.cancel()
        assert outcomes.results == {"after": None}
        assert "callback raised" in caplog.text
        assert await store.last_seq(room.id) == 2


async def test_stopping_fails_pending_jobs_once(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = await make_room(alice)
        gated = GatedStore(store)
        writer = MessageWriter(gated)  # type: ignore[arg-type]
        outcomes = Outcomes(expected=3)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.serve)
            writer.submit_nowait([msg(room, 1, alice)], outcomes.callback("in flight"))
            await gated.entered.wait()
            writer.submit_nowait([msg(room, 2, alice)], outcomes.callback("queued"))
            nursery.cancel_scope.cancel()

        assert set(outcomes.results) == {"in flight", "queued"}
        for exc in outcomes.results.values():
            assert isinstance(exc, StoreError) and "writer stopped" in str(exc)
        # After the writer stopped, a submit is answered at once, not queued forever.
        writer.submit_nowait([msg(room, 3, alice)], outcomes.callback("late"))
        assert isinstance(outcomes.results["late"], StoreError)
        assert outcomes.calls == {"in flight": 1, "queued": 1, "late": 1}
        assert writer.statistics().failures == 3
        assert await store.last_seq(room.id) == 0


class DownStore:
    """A database that fails every write for a reason unrelated to the rows."""

    def __init__(self) -> None:
        self.calls = 0

    async def insert_messages(
        self, messages: Sequence[StoredMessage], fences: Mapping[str, int] | None = None
    ) -> None:
        self.calls += 1
        await trio.lowlevel.checkpoint()
        raise StoreError("database is locked")


async def test_a_failing_database_fails_the_round_without_retrying_every_job(msg: Msg) -> None:
    # No real I/O here: a fake store, so no fail_after and no database fixture.
    down = DownStore()
    writer = MessageWriter(down)  # type: ignore[arg-type]
    outcomes = Outcomes(expected=4)
    for i in range(4):
        writer.submit_nowait([msg(f"r_{i}", 1, "u_1")], outcomes.callback(str(i)))
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.serve)
        await outcomes.all_done.wait()
        nursery.cancel_scope.cancel()
    assert all(isinstance(e, StoreError) and "locked" in str(e) for e in outcomes.results.values())
    # The combined write, then one single retry that shows the database is down.
    assert down.calls == 2
    assert outcomes.calls == {str(i): 1 for i in range(4)}
    assert writer.statistics().failures == 4


async def test_wait_idle_returns_once_nothing_of_that_room_is_queued_or_being_written(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    """What a restarting room actor waits for before it reads its last seq (issue 12, item 9)."""
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        busy, quiet = await make_room(alice), await make_room(alice)
        writer = MessageWriter(store)
        outcomes = Outcomes(expected=1)
        idle_at: list[int] = []
        read = trio.Event()

        async def wait_then_read() -> None:
            await writer.wait_idle(busy.id)
            idle_at.append(await store.last_seq(busy.id))
            read.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(writer.serve)
            writer.pause()
            writer.submit_nowait([msg(busy, 1, alice)], outcomes.callback("busy"))
            await writer.wait_idle(quiet.id)  # another room's job does not hold it up
            nursery.start_soon(wait_then_read)
            await trio.testing.wait_all_tasks_blocked()
            assert idle_at == [] and "busy" not in outcomes.results  # paused: nothing written
            writer.resume()
            await outcomes.all_done.wait()
            await read.wait()
            nursery.cancel_scope.cancel()
        assert outcomes.results == {"busy": None}
        assert idle_at == [1]


async def test_a_paused_writer_answers_its_held_jobs_when_it_stops(
    store: Store, make_user: MakeUser, make_room: MakeRoom, msg: Msg
) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await make_user("alice")
        room = await make_room(alice)
        writer = MessageWriter(store)
        outcomes = Outcomes(expected=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.serve)
            writer.pause()
            writer.submit_nowait([msg(room, 1, alice)], outcomes.callback("one"))
            writer.submit_nowait([msg(room, 2, alice)], outcomes.callback("two"))
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert set(outcomes.results) == {"one", "two"}
        assert all(isinstance(e, StoreError) for e in outcomes.results.values())
        assert outcomes.calls == Counter({"one": 1, "two": 1})
        await writer.wait_idle(room.id)  # nothing is left held
        assert await store.last_seq(room.id) == 0
