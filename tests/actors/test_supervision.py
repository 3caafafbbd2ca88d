"""The one supervision model: restart budget, never-restarted children, shutdown order.

Real trio on virtual time (MockClock with autojump): no test sleeps for real.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from actors.errors import ActorUnavailable
from actors.supervision import (
    Restart,
    RestartPolicy,
    ServiceNursery,
    open_services,
    supervise,
)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class Flaky:
    """A task that crashes on each of its first ``crashes`` runs, ``every`` seconds apart."""

    def __init__(self, crashes: int, every: float = 0.0) -> None:
        self.crashes = crashes
        self.every = every
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        await trio.sleep(self.every)
        if self.runs <= self.crashes:
            raise RuntimeError(f"crash {self.runs}")


async def supervised(flaky: Flaky, name: str, policy: RestartPolicy) -> tuple[bool, list[bool]]:
    """Whether ``flaky`` ended on its own, and ``restarting`` after each crash."""
    seen: list[bool] = []
    ended = await supervise(
        flaky.run, name=name, policy=policy, on_crash=lambda _exc, again: seen.append(again)
    )
    return ended, seen


async def test_a_crash_within_the_budget_is_restarted(autojump_clock):
    flaky = Flaky(crashes=1)
    assert await supervise(flaky.run, name="flaky", policy=RestartPolicy(1, 5.0))
    assert flaky.runs == 2


async def test_more_crashes_than_the_budget_within_the_window_stop_the_child(
    autojump_clock, caplog
):
    flaky = Flaky(crashes=100)
    with caplog.at_level(logging.ERROR, "actors.supervision"):
        ended, seen = await supervised(flaky, "flaky", RestartPolicy(2, 5.0))
    assert not ended
    assert flaky.runs == 3  # the first run and 2 restarts
    assert seen == [True, True, False]
    assert "flaky over its restart budget (2 in 5s); stopped" in caplog.text


async def test_crashes_further_apart_than_the_window_never_use_up_the_budget(autojump_clock):
    flaky = Flaky(crashes=5, every=6.0)  # one crash per 6 s, the window is 5 s
    assert await supervise(flaky.run, name="flaky", policy=RestartPolicy(1, 5.0))
    assert flaky.runs == 6


async def test_a_child_never_restarted_says_why(autojump_clock, caplog):
    with pytest.raises(ValueError):
        RestartPolicy(restart=Restart.NEVER)
    policy = RestartPolicy(restart=Restart.NEVER, reason="it would bill twice")
    flaky = Flaky(crashes=1)
    with caplog.at_level(logging.ERROR, "actors.supervision"):
        ended, seen = await supervised(flaky, "answer", policy)
    assert not ended and flaky.runs == 1 and seen == [False]
    assert "answer crashed; not restarted: it would bill twice" in caplog.text


async def test_cancellation_is_never_taken_for_a_crash(autojump_clock):
    flaky = Flaky(crashes=0, every=100.0)
    with trio.move_on_after(1):
        await supervise(flaky.run, name="slow")
    assert flaky.runs == 1


async def test_a_service_nursery_task_restarts_within_its_budget_and_stops_after_it(
    autojump_clock,
):
    tasks = ServiceNursery("tracker", RestartPolicy(1, 5.0))
    with pytest.raises(ActorUnavailable):
        tasks.start_soon(trio.sleep, 1)  # not serving yet
    async with trio.open_nursery() as nursery:
        await nursery.start(tasks.serve)
        once, always = Flaky(crashes=1), Flaky(crashes=100)
        tasks.start_soon(once.run)
        tasks.start_soon(always.run)
        await trio.testing.wait_all_tasks_blocked()
        assert (once.runs, always.runs) == (2, 2)
        assert tasks.statistics() == {"tasks": 0, "crashes": 3}
        # Each task has its own budget, and the service goes on serving.
        fine = Flaky(crashes=0)
        tasks.start_soon(fine.run)
        await trio.testing.wait_all_tasks_blocked()
        assert fine.runs == 1
        nursery.cancel_scope.cancel()
    assert not tasks.running
    assert not tasks.start_if_running(trio.sleep, 1)


async def test_services_stop_in_the_reverse_of_their_start_order(autojump_clock):
    stopped: list[str] = []

    async def service(
        name: str, linger: float, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started(name)
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(linger)  # its own cleanup
            stopped.append(name)

    started_at = trio.current_time()
    async with open_services(stop_timeout=2.0) as services:
        assert await services.start(service, "bus", 0) == "bus"
        await services.start(service, "rooms", 1, name="rooms")
        await services.start(service, "typing", 0)
        await services.start(service, "ai", 30)  # overstays its stop_timeout
        await services.start(service, "listener", 0)
        assert services.names == ["service", "rooms", "service", "service", "service"]
    # Each waited for in turn; one that overstays is left to finish on its own.
    assert stopped[:4] == ["listener", "typing", "rooms", "bus"]
    assert stopped[4] == "ai"
    assert trio.current_time() - started_at == pytest.approx(30)
