"""The actor runtime: tell/ask, bounded inboxes, virtual spawn, idle stop, crash restart.

These use trio's MockClock with autojump, so every timeout and idle period is
virtual: no test sleeps for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from actors.errors import ActorCrashed, ActorError, ActorUnavailable, AskTimeout, Rejected
from actors.runtime import Actor, ActorRef, ActorSystem
from protocol.errors import ErrorCode
from storage.errors import StoreError


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# A toy "storage": counters that survive actor restarts, like a database would.
Storage = dict[str, int]


@dataclass(frozen=True)
class Add:
    n: int


@dataclass(frozen=True)
class Get:
    pass


@dataclass(frozen=True)
class Boom:
    pass


@dataclass(frozen=True)
class Refuse:
    pass


@dataclass(frozen=True)
class Slow:
    seconds: float


class Counter(Actor):
    """Persists every change to storage at once and reloads it on start."""

    starts: dict[str, int] = {}

    def __init__(self, key: str, ref: ActorRef, storage: Storage) -> None:
        super().__init__(key, ref)
        self.storage = storage
        self.value = 0

    async def on_start(self) -> None:
        if self.key.startswith("missing"):
            raise ActorUnavailable("no such counter")
        Counter.starts[self.key] = Counter.starts.get(self.key, 0) + 1
        self.value = self.storage.get(self.key, 0)

    async def handle_call(self, msg: Any) -> Any:
        match msg:
            case Get():
                return self.value
            case Add(n):
                self.value += n
                self.storage[self.key] = self.value
                return self.value
            case Boom():
                raise RuntimeError("boom")
            case Refuse():
                raise Rejected("not allowed")
            case Slow(seconds):
                await trio.sleep(seconds)
                return "slow done"
            case _:
                raise AssertionError(msg)

    async def handle_cast(self, msg: Any) -> None:
        match msg:
            case Add(n):
                self.value += n
                self.storage[self.key] = self.value
            case Boom():
                raise RuntimeError("boom")
            case _:
                raise AssertionError(msg)


@pytest.fixture
async def system() -> AsyncIterator[tuple[ActorSystem, Storage]]:
    storage: Storage = {}
    Counter.starts = {}
    system = ActorSystem(
        inbox_size=4, idle_seconds=60, ask_timeout=5, max_restarts=1, restart_window=5
    )
    system.register("counter", lambda key, ref: Counter(key, ref, storage))
    async with trio.open_nursery() as nursery:
        await nursery.start(system.serve)
        yield system, storage
        nursery.cancel_scope.cancel()


async def test_first_address_spawns_the_actor_and_ask_gets_the_answer(system, autojump_clock):
    sys_, _ = system
    ref = sys_.ref("counter", "a")
    assert not sys_.is_live("counter", "a")
    assert await ref.ask(Add(2)) == 2
    assert sys_.is_live("counter", "a")
    await ref.tell(Add(3))
    assert await ref.ask(Get()) == 5
    assert Counter.starts == {"a": 1}


async def test_every_ref_to_one_key_reaches_the_same_actor(system, autojump_clock):
    sys_, _ = system
    await sys_.ref("counter", "a").ask(Add(1))
    await sys_.ref("counter", "a").ask(Add(1))
    assert await sys_.ref("counter", "a").ask(Get()) == 2
    assert await sys_.ref("counter", "b").ask(Get()) == 0


async def test_ask_times_out_instead_of_hanging(system, autojump_clock):
    sys_, _ = system
    ref = sys_.ref("counter", "a")
    start = trio.current_time()
    with pytest.raises(AskTimeout):
        await ref.ask(Slow(100), timeout=2)
    assert trio.current_time() - start == pytest.approx(2)
    # The actor lives on and answers once the slow request is done.
    assert await ref.ask(Get(), timeout=200) == 0


async def test_a_rejection_answers_the_caller_and_the_actor_lives_on(system, autojump_clock):
    sys_, _ = system
    ref = sys_.ref("counter", "a")
    await ref.ask(Add(7))
    with pytest.raises(Rejected):
        await ref.ask(Refuse())
    assert await ref.ask(Get()) == 7
    assert Counter.starts == {"a": 1}


async def test_a_crash_fails_the_pending_asks_and_restarts_from_storage(system, autojump_clock):
    sys_, storage = system
    ref = sys_.ref("counter", "a")
    await ref.ask(Add(5))
    results: dict[str, Any] = {}

    async def ask(name: str, msg: Any) -> None:
        try:
            results[name] = await ref.ask(msg)
        except Exception as exc:
            results[name] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, "slow", Slow(1))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, "boom", Boom())
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, "queued", Get())
    assert results["slow"] == "slow done"
    assert isinstance(results["boom"], ActorCrashed)
    assert isinstance(results["queued"], ActorCrashed)
    # Restarted, with its state reloaded from storage.
    assert await ref.ask(Get()) == 5
    assert Counter.starts == {"a": 2}
    assert sys_.statistics().crashes == 1


async def test_crashing_too_often_stops_the_actor_and_the_next_address_starts_it_afresh(
    system, autojump_clock
):
    sys_, _ = system
    ref = sys_.ref("counter", "a")
    with pytest.raises(ActorCrashed):
        await ref.ask(Boom())
    with pytest.raises(ActorCrashed):
        await ref.ask(Boom())
    await trio.testing.wait_all_tasks_blocked()
    assert not sys_.is_live("counter", "a")
    assert await ref.ask(Add(1)) == 1


async def test_a_crash_in_a_cast_is_contained(system, autojump_clock):
    sys_, _ = system
    ref = sys_.ref("counter", "a")
    await ref.tell(Add(1))
    await ref.tell(Boom())
    await trio.testing.wait_all_tasks_blocked()
    assert await ref.ask(Get()) == 1
    assert sys_.ref("counter", "b") is not None
    assert await sys_.ref("counter", "b").ask(Add(1)) == 1


async def test_an_idle_actor_stops_and_is_spawned_again_on_next_address(system, autojump_clock):
    sys_, _ = system
    ref = sys_.ref("counter", "a")
    await ref.ask(Add(4))
    await trio.sleep(59)
    assert sys_.is_live("counter", "a")
    await trio.sleep(2)
    assert not sys_.is_live("counter", "a")
    assert sys_.statistics().idle_stops == 1
    # The same ref still works: it reaches a fresh incarnation loaded from storage.
    assert await ref.ask(Get()) == 4
    assert Counter.starts == {"a": 2}


async def test_activity_keeps_an_actor_alive(system, autojump_clock):
    sys_, _ = system
    ref = sys_.ref("counter", "a")
    for _ in range(5):
        await ref.ask(Add(1))
        await trio.sleep(50)
    assert sys_.is_live("counter", "a")
    assert Counter.starts == {"a": 1}


async def test_an_actor_that_refuses_to_start_fails_its_queued_messages(system, autojump_clock):
    sys_, _ = system
    ref = sys_.ref("counter", "missing-1")
    with pytest.raises(ActorUnavailable):
        await ref.ask(Get())
    assert not sys_.is_live("counter", "missing-1")


async def test_the_inbox_is_bounded_and_tell_waits_for_room(system, autojump_clock):
    sys_, _ = system
    ref = sys_.ref("counter", "a")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(ref.ask, Slow(10), timeout=20))
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(4):  # the inbox holds 4
            ref.tell_nowait(Add(1))
        with pytest.raises(trio.WouldBlock):
            ref.tell_nowait(Add(1))
        # tell_soon never blocks and never drops: it waits in the background.
        ref.tell_soon(Add(1))
    assert await ref.ask(Get()) == 5


async def test_shutdown_fails_every_waiting_ask(autojump_clock):
    storage: Storage = {}
    system = ActorSystem(inbox_size=4, idle_seconds=60, ask_timeout=1000)
    system.register("counter", lambda key, ref: Counter(key, ref, storage))
    outcome: list[BaseException] = []

    async def ask() -> None:
        try:
            await system.ref("counter", "a").ask(Slow(500))
        except ActorUnavailable as exc:
            outcome.append(exc)

    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as inner:
            await inner.start(system.serve)
            outer.start_soon(ask)
            outer.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()
            inner.cancel_scope.cancel()
    assert len(outcome) == 2


# ----- what an actor holds, and storage outages (issue 12, items 19 and 20) -------


@dataclass(eq=False)
class Held:
    """A cast the actor keeps in its own state, answered later (like a pending post)."""

    answer: list[str]

    def fail(self, error: Exception) -> None:
        self.answer.append(f"failed: {getattr(error, 'code', '')}")


class Holder(Actor):
    def __init__(self, key: str, ref: ActorRef, storage: Storage) -> None:
        super().__init__(key, ref)
        self.held: list[Held] = []
        self.storage = storage

    async def on_start(self) -> None:
        if self.storage.get("down"):
            raise StoreError("database unreachable")

    async def handle_cast(self, msg: Any) -> None:
        match msg:
            case Held():
                self.held.append(msg)
            case Boom():
                raise RuntimeError("boom")
            case _:
                raise AssertionError(msg)

    async def handle_call(self, msg: Any) -> Any:
        match msg:
            case Get():
                return len(self.held)
            case Boom():
                raise StoreError("lost the connection")
            case _:
                raise AssertionError(msg)

    def abandon(self, error: ActorError) -> None:
        held, self.held = self.held, []
        for h in held:
            h.fail(error)


@pytest.fixture
async def holders() -> AsyncIterator[tuple[ActorSystem, Storage]]:
    storage: Storage = {}
    system = ActorSystem(inbox_size=4, ask_timeout=5, max_restarts=1, restart_window=5)
    system.register("holder", lambda key, ref: Holder(key, ref, storage))
    async with trio.open_nursery() as nursery:
        await nursery.start(system.serve)
        yield system, storage
        nursery.cancel_scope.cancel()


async def test_a_crash_answers_what_the_actor_held_in_its_own_state(holders, autojump_clock):
    sys_, _ = holders
    ref = sys_.ref("holder", "a")
    answer: list[str] = []
    await ref.tell(Held(answer))
    assert await ref.ask(Get()) == 1
    await ref.tell(Boom())
    await trio.testing.wait_all_tasks_blocked()
    assert answer == ["failed: internal"]
    assert await ref.ask(Get()) == 0  # restarted, empty-handed


async def test_shutdown_answers_what_every_actor_held(autojump_clock):
    answer: list[str] = []
    system = ActorSystem(inbox_size=4, ask_timeout=5)
    system.register("holder", lambda key, ref: Holder(key, ref, {}))
    async with trio.open_nursery() as nursery:
        await nursery.start(system.serve)
        await system.ref("holder", "a").tell(Held(answer))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert answer == ["failed: unavailable"]


async def test_storage_down_at_start_is_unavailable_not_a_crash_and_the_next_address_retries(
    holders, autojump_clock
):
    sys_, storage = holders
    storage["down"] = 1
    ref = sys_.ref("holder", "a")
    for _ in range(3):
        with pytest.raises(ActorUnavailable) as refused:
            await ref.ask(Get())
        assert refused.value.code == ErrorCode.UNAVAILABLE
    assert sys_.statistics().crashes == 0
    assert sys_.health.statistics().outages == 1  # one outage, however many refusals
    del storage["down"]
    assert await ref.ask(Get()) == 0


async def test_a_storage_failure_in_a_handler_answers_unavailable_not_internal(
    holders, autojump_clock
):
    sys_, _ = holders
    with pytest.raises(ActorCrashed) as crashed:
        await sys_.ref("holder", "a").ask(Boom())
    assert crashed.value.code == ErrorCode.UNAVAILABLE


@dataclass(frozen=True)
class Tracked(Add):
    """A cast that hears it was lost, as a post's err frame would."""

    failures: list[ActorError]

    def fail(self, error: ActorError) -> None:
        self.failures.append(error)


async def test_tell_soon_past_a_full_inbox_queues_in_order_then_answers_overloaded(
    system, autojump_clock
):
    sys_, storage = system
    ref = sys_.ref("counter", "a")
    failures: list[ActorError] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(ref.ask, Slow(10), timeout=20))
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(4):  # the inbox holds 4
            ref.tell_nowait(Add(1))
        for n in (10, 100, 1000, 10000):  # the overflow holds as many
            ref.tell_soon(Tracked(n, failures))
        # One task drains the overflow, however many messages wait in it.
        assert sys_.statistics().tasks == 2  # the actor, its drain
        ref.tell_soon(Tracked(7, failures))
        assert [e.code for e in failures] == [ErrorCode.OVERLOADED]
        assert sys_.statistics().overloaded == 1
        # A completion of the actor's own work is never refused.
        ref.tell_soon(Tracked(100000, failures), completion=True)
        assert len(failures) == 1
    await trio.testing.wait_all_tasks_blocked()  # an ask does not queue behind tell_soon
    assert await ref.ask(Get()) == 4 + 11110 + 100000
    assert sys_.statistics().tasks == 1  # the drain ended with its overflow


async def test_tell_soon_keeps_arrival_order_behind_what_overflowed(system, autojump_clock):
    seen: list[int] = []

    class Recorder(Actor):
        async def handle_cast(self, msg: Any) -> None:
            await trio.sleep(1)
            seen.append(msg)

    sys_, _ = system
    sys_.register("recorder", lambda key, ref: Recorder(key, ref))
    ref = sys_.ref("recorder", "r")
    for n in range(8):  # 4 in the inbox, 4 in the overflow
        ref.tell_soon(n)
    await trio.sleep(20)
    assert seen == list(range(8))


async def test_what_waits_in_the_overflow_is_failed_when_the_system_stops(autojump_clock):
    failures: list[ActorError] = []
    system = ActorSystem(inbox_size=1, overflow_size=2, idle_seconds=60, ask_timeout=100)
    system.register("counter", lambda key, ref: Counter(key, ref, {}))
    async with trio.open_nursery() as nursery:
        await nursery.start(system.serve)
        ref = system.ref("counter", "a")
        nursery.start_soon(partial(ref.ask, Slow(50), timeout=100))
        await trio.testing.wait_all_tasks_blocked()
        for n in range(3):  # 1 in the inbox, 2 in the overflow
            ref.tell_soon(Tracked(n, failures))
        nursery.cancel_scope.cancel()
    assert len(failures) == 3
    assert all(isinstance(e, ActorUnavailable) for e in failures)
