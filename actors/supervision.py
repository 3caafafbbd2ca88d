"""One supervision model for every long-lived task of a node.

Rules of the house:
- Nurseries are the tree. A service that spawns tasks while it runs (the
  actor system, AI generations, the presence and typing trackers, the call
  registry, the cluster links) owns one ``ServiceNursery``: its ``serve``
  opens the nursery, says ``started``, runs the service's own loop (or waits
  until cancelled) and forgets the nursery on the way out, so nothing is ever
  spawned into a nursery that has closed.
- One restart policy (``RestartPolicy``), OTP's: a child that crashes (raises
  an ``Exception``; ``Cancelled`` is never caught) is logged and started
  again, unless it crashed more than ``max_restarts`` times within ``window``
  seconds: then it is stopped, and that is logged too. The budget is the
  child's own (one room, one presence timer), so one bad room or user never
  stops the others. The node's default is 1 restart in 5 s.
- A child that must not be started again says so in its policy,
  ``Restart.NEVER`` with the reason, and its crash is logged with it: an AI
  generation that crashed fails its stream (``ai.error``) instead of calling
  the provider a second time (a second bill, a second, different answer).
- Who uses which policy:

      actor cells (rooms, calls)    ON_CRASH, the system's budget; the restart
                                    is a new incarnation loaded from storage
      AI generations                NEVER: the crash ends the stream with ai.error
      presence and typing timers,   ON_CRASH, per task: the task runs again
      cluster links' tasks          from its start (each re-checks its state)
      call timers                   NEVER: a timer measures from the transition
                                    that set it; run again it would fire twice

- A service with no tasks of its own that only holds something while the
  node runs (billing's HTTP clients, /metrics' view of the node) uses
  ``hold_until_cancelled``; a housekeeping loop uses ``every``.
- Bounded: an actor's inbox is bounded; ``ActorRef.tell_soon`` queues past a
  full inbox into a bounded overflow drained by one task per actor, and fails
  the message with ``overloaded`` past that bound (see ``actors.runtime``).
  The tasks a service nursery holds are bounded by the state that spawns
  them (one grace timer and one flush per user, one expiry per typing
  indicator, one timer per call and kind); ``statistics()`` counts them.

Shutdown order (``open_services``): services stop in the reverse of the order
they started, each given ``stop_timeout`` seconds to finish its ``finally``.
A node starts the bus first and the listener last, so it stops:

  1. accepting: /metrics' view of the node, then the listener (before
     that, ``node.drain`` stops reading frames, waits until no room has
     work in flight and closes the sockets with 1001)
  2. housekeeping: story sweeper, admin statistics, billing
  3. AI: the generations are cancelled; each stores its partial answer
  4. trackers: presence (and its cluster part), typing
  5. calls (their links, the registry), the expiry sweeper, push, then the
     rooms (their link, the actor system: each actor fails what it held)
  6. the bus; the storage writer stops after all of them (``open_node``)
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from actors.errors import ActorUnavailable

log = logging.getLogger(__name__)


class Restart(enum.Enum):
    ON_CRASH = "on crash"  # started again after a crash, within the budget
    NEVER = "never"  # a crash ends it; the policy says why


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """What happens when a supervised child crashes (OTP's restart intensity)."""

    max_restarts: int = 1
    window: float = 5.0
    restart: Restart = Restart.ON_CRASH
    reason: str = ""  # why a NEVER child is not restarted: logged with its crash

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.window < 0:
            raise ValueError("a restart budget is never negative")
        if self.restart is Restart.NEVER and not self.reason:
            raise ValueError("a child that is never restarted must say why")

    def budget(self) -> RestartBudget:
        return RestartBudget(self)


DEFAULT_POLICY = RestartPolicy()


class RestartBudget:
    """The crashes of one child within its policy's window."""

    __slots__ = ("policy", "_crashes")

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._crashes: deque[float] = deque()

    def crashed(self) -> bool:
        """Count a crash now; whether the child may start again."""
        if self.policy.restart is Restart.NEVER:
            return False
        now = trio.current_time()
        self._crashes.append(now)
        while self._crashes and self._crashes[0] < now - self.policy.window:
            self._crashes.popleft()
        return len(self._crashes) <= self.policy.max_restarts


CrashHook = Callable[[Exception, bool], None]


async def supervise(
    run: Callable[[], Awaitable[object]],
    *,
    name: str,
    policy: RestartPolicy = DEFAULT_POLICY,
    budget: RestartBudget | None = None,
    on_crash: CrashHook | None = None,
    quiet: Callable[[Exception], bool] | None = None,
) -> bool:
    """Run ``run`` until it returns, restarting it after a crash as ``policy`` allows.

    True when it returned, False when a crash stopped it for good.
    ``on_crash(exc, restarting)`` runs after each crash, before any restart:
    the child answers whatever its crash left waiting. ``quiet(exc)`` true
    logs that crash in one line without its traceback (an outage that is
    reported elsewhere, not a bug).
    """
    budget = budget or policy.budget()
    while True:
        try:
            await run()
            return True
        except Exception as exc:
            restart = budget.crashed()
            _log_crash(name, budget.policy, exc, restart, quiet is not None and quiet(exc))
            if on_crash is not None:
                try:
                    on_crash(exc, restart)
                except Exception:  # a failing hook must not take the supervisor down
                    log.exception("%s: the crash hook raised", name)
            if not restart:
                return False


def _log_crash(
    name: str, policy: RestartPolicy, exc: Exception, restart: bool, quiet: bool
) -> None:
    if quiet:
        log.debug("%s stopped by %r", name, exc)
    elif policy.restart is Restart.NEVER:
        log.error("%s crashed; not restarted: %s", name, policy.reason, exc_info=exc)
    elif restart:
        log.error("%s crashed; restarting", name, exc_info=exc)
    else:
        log.error("%s crashed", name, exc_info=exc)
    if not restart and policy.restart is Restart.ON_CRASH:
        log.error(
            "%s over its restart budget (%d in %gs); stopped",
            name,
            policy.max_restarts,
            policy.window,
        )


async def hold_until_cancelled(
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    on_stop: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """A service with no tasks of its own that holds something (clients, a
    registration) while the node runs: ``started``, then wait until cancelled;
    ``on_stop`` runs shielded on the way out."""
    try:
        task_status.started()
        await trio.sleep_forever()
    finally:
        if on_stop is not None:
            with trio.CancelScope(shield=True):
                await on_stop()


async def every(seconds: float, fn: Callable[[], object]) -> None:
    """Call ``fn`` every ``seconds`` until cancelled: a service's housekeeping loop."""
    while True:
        await trio.sleep(seconds)
        fn()


class ServiceNursery:
    """The nursery a long-lived service spawns its tasks into, while it runs.

    Every task started here is supervised with the nursery's policy (or the
    one given to ``start_soon``): a crash never reaches the node's nursery.
    """

    def __init__(self, name: str, policy: RestartPolicy = DEFAULT_POLICY) -> None:
        self.name = name
        self.policy = policy
        self._nursery: trio.Nursery | None = None
        self._live = 0
        self.crashes = 0

    @property
    def running(self) -> bool:
        return self._nursery is not None

    def statistics(self) -> dict[str, int]:
        return {"tasks": self._live, "crashes": self.crashes}

    async def serve(
        self,
        main: Callable[[], Awaitable[object]] | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Hold the nursery and run ``main`` (the service's own loop; a crash
        of it is the service's and escalates) or wait until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                if main is None:
                    await trio.sleep_forever()
                else:
                    await main()
            finally:
                self._nursery = None

    def start_soon(
        self,
        fn: Callable[..., Awaitable[object]],
        *args: Any,
        name: str | None = None,
        policy: RestartPolicy | None = None,
        on_crash: CrashHook | None = None,
        quiet: Callable[[Exception], bool] | None = None,
    ) -> None:
        """Start ``fn(*args)`` supervised; ``ActorUnavailable`` when not running."""
        if self._nursery is None:
            raise ActorUnavailable(f"{self.name} is not running")
        label = f"{self.name}: {name or getattr(fn, '__name__', 'task')}"
        self._live += 1  # counted from now: a task started soon always runs
        self._nursery.start_soon(
            self._child,
            partial(fn, *args),
            label,
            policy or self.policy,
            on_crash,
            quiet,
            name=label,
        )

    def start_if_running(self, fn: Callable[..., Awaitable[object]], *args: Any) -> bool:
        """``start_soon``, or nothing once the service has stopped (work that
        only matters while it runs: a timer, a repair). False when not started."""
        if self._nursery is None:
            return False
        self.start_soon(fn, *args)
        return True

    async def _child(
        self,
        run: Callable[[], Awaitable[object]],
        label: str,
        policy: RestartPolicy,
        on_crash: CrashHook | None,
        quiet: Callable[[Exception], bool] | None,
    ) -> None:
        def crashed(exc: Exception, restarting: bool) -> None:
            self.crashes += 1
            if on_crash is not None:
                on_crash(exc, restarting)

        try:
            await supervise(run, name=label, policy=policy, on_crash=crashed, quiet=quiet)
        finally:
            self._live -= 1


@dataclass(eq=False, slots=True)
class _Started:
    name: str
    scope: trio.CancelScope
    done: trio.Event


class Services:
    """The node's services, started in order and stopped in the reverse order."""

    def __init__(self, nursery: trio.Nursery, stop_timeout: float) -> None:
        self._nursery = nursery
        self._stop_timeout = stop_timeout
        self._started: list[_Started] = []

    @property
    def names(self) -> list[str]:
        """The running services, in the order they started."""
        return [s.name for s in self._started]

    async def start(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str = "") -> Any:
        """``nursery.start(fn, *args)``: returns what ``fn`` passed to ``started``."""
        started = _Started(name or _name_of(fn), trio.CancelScope(), trio.Event())

        async def run(task_status: trio.TaskStatus[Any]) -> None:
            try:
                with started.scope:
                    await fn(*args, task_status=task_status)
            finally:
                started.done.set()

        value = await self._nursery.start(run, name=started.name)
        self._started.append(started)
        return value

    async def aclose(self) -> None:
        """Stop every service, the last started first, each within ``stop_timeout``."""
        while self._started:
            service = self._started.pop()
            log.debug("shutdown: stopping %s", service.name)
            service.scope.cancel()
            with trio.move_on_after(self._stop_timeout) as late:
                await service.done.wait()
            if late.cancelled_caught:
                log.warning(
                    "shutdown: %s still stopping after %gs", service.name, self._stop_timeout
                )
        self._nursery.cancel_scope.cancel()


def _name_of(fn: Callable[..., object]) -> str:
    inner = fn.func if isinstance(fn, partial) else fn
    owner = getattr(inner, "__self__", None)
    name = getattr(inner, "__name__", None) or repr(inner)
    return name if owner is None else f"{type(owner).__name__}.{name}"


@asynccontextmanager
async def open_services(*, stop_timeout: float = 5.0) -> AsyncIterator[Services]:
    """A nursery of services whose shutdown follows the module's order.

    On leaving, the services stop one by one (``Services.aclose``); a caller
    that must do work first (a draining shutdown) does it, then ``aclose``.
    """
    async with trio.open_nursery() as nursery:
        services = Services(nursery, stop_timeout)
        try:
            yield services
        finally:
            with trio.CancelScope(shield=True):
                await services.aclose()
