"""The actor runtime: virtual actors addressed by (kind, key), supervised.

Rules of the house:
- An actor's state is touched only by its own task, in ``handle_call`` /
  ``handle_cast``; there are no locks because there is no sharing.
- Addressing an actor that is not running spawns it (``on_start`` loads its
  state from storage). An actor idle for ``idle_seconds`` stops itself and is
  spawned again when next addressed.
- A handler that raises ``Rejected`` answers its caller with that error; any
  other exception is a crash: it is logged, the message in hand and every
  message still queued are failed (asks raise ``ActorCrashed``, casts get
  ``fail()`` called), the actor's ``abandon()`` answers whatever it held in
  its own state, and the actor restarts from storage. More than
  ``max_restarts`` crashes within ``restart_window`` seconds stop it instead;
  the next address starts it afresh (``actors.supervision``'s one policy).
- ``tell_soon`` never blocks and never spawns per message: past a full inbox
  a message waits in the actor's overflow (FIFO, at most ``overflow_size``),
  which one task per actor drains into the inbox. Past that bound the
  message is failed with ``overloaded``: an actor that far behind is told
  nothing more rather than holding the node's memory. A completion of the
  actor's own work (``completion=True``, e.g. a write it submitted) is
  queued past the bound: there is at most one per piece of work in flight,
  and failing it would leave the actor waiting for it forever.
- Storage failing is an outage, not a bug: an ``on_start`` that hits one
  refuses to exist for now (``ActorUnavailable``, code ``unavailable``; the
  next address tries again), a crash caused by one fails the messages with
  ``unavailable`` instead of ``internal``, and neither logs a traceback: the
  system's ``StorageHealth`` logs one line when the outage begins and one
  when it ends.
- Every task lives in the system's nursery; callers never wait forever: each
  ``ask`` has a timeout.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

import trio

from actors.errors import ActorCrashed, ActorError, ActorUnavailable, AskTimeout, Rejected
from actors.supervision import Restart, RestartBudget, RestartPolicy, ServiceNursery, supervise
from protocol.errors import ErrorCode
from realtime_server.base import metrics
from storage.outage import StorageHealth, is_outage

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M")  # the closed union of one actor kind's messages
R = TypeVar("R")  # what an ``Ask`` is answered with


class Ask(Generic[R]):
    """Base of a message that is answered (``ask``): ``R`` is the answer's type.

    ``class GetPins(Ask[PinsView])`` makes ``await ref.ask(GetPins(...))`` a
    ``PinsView``. The actor hands its answer back through ``answer``, which
    makes mypy check it against ``R``; the runtime carries it untyped, so that
    is the one place that types meet.
    """

    __slots__ = ()

    def answer(self, value: R) -> R:
        return value


class ActorKind(str, Generic[M]):
    """The name of an actor kind, carrying the type of its messages.

    ``ROOM: ActorKind[RoomMessage] = ActorKind("room")`` makes
    ``system.ref(ROOM, key)`` an ``ActorRef[RoomMessage]``. It is a ``str``:
    logs, metrics and ``census()`` see the plain name.
    """

    __slots__ = ()


# A cell's task supervises its actor itself (with the cell's budget, across
# incarnations); what is left to crash around it would be the runtime's bug.
_CELL_SHELL = RestartPolicy(
    restart=Restart.NEVER, reason="a cell restarts its actor itself; this is the runtime's bug"
)


class Failable(Protocol):
    """A cast message that can tell its sender it was lost (e.g. an err frame)."""

    def fail(self, error: ActorError) -> None: ...


class Reply(Generic[T]):
    """A one-shot slot an actor fills for an ``ask``; set at most once."""

    __slots__ = ("_event", "_value", "_error")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def set(self, value: T) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> T:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        # Set only together with the event (by ``set``), so it is a T here.
        return cast(T, self._value)


@dataclass(slots=True)
class _Call:
    msg: object
    reply: Reply[object]

    def fail(self, error: ActorError) -> None:
        self.reply.fail(error)


@dataclass(slots=True)
class _Cast:
    msg: object

    def fail(self, error: ActorError) -> None:
        fail = getattr(self.msg, "fail", None)
        if fail is not None:
            try:
                fail(error)
            except Exception:  # a failing fail() must not take the runtime down
                log.exception("fail() of %r raised", self.msg)


_Envelope = _Call | _Cast


class Actor(Generic[M]):
    """Base class of an actor kind, generic over its message union ``M``.

    Subclasses override the hooks they need. ``handle_call`` answers the
    ``Ask`` members of ``M`` (returning ``msg.answer(value)``, so the value is
    checked against the message's reply type); ``handle_cast`` takes the rest.
    """

    def __init__(self, key: str, ref: ActorRef[M]) -> None:
        self.key = key
        self.ref = ref

    async def on_start(self) -> None:
        """Load state. Raise ``ActorUnavailable`` to refuse to exist (e.g. no such room)."""

    async def handle_call(self, msg: M) -> object:
        raise ActorError(f"{type(self).__name__} does not answer {type(msg).__name__}")

    async def handle_cast(self, msg: M) -> None:
        raise ActorError(f"{type(self).__name__} does not take {type(msg).__name__}")

    def may_stop_idle(self) -> bool:
        """False while the actor has work in flight that an idle stop would lose."""
        return True

    def abandon(self, error: ActorError) -> None:
        """The actor crashed or stopped: answer every request it holds in its own state.

        Synchronous (it runs while the runtime unwinds, maybe under
        cancellation). Messages still in the inbox are failed by the runtime.
        """


@dataclass(eq=False)
class _Cell:
    """One live incarnation of a (kind, key): its inbox and what it holds now."""

    kind: str
    key: str
    send: trio.MemorySendChannel[_Envelope]
    receive: trio.MemoryReceiveChannel[_Envelope]
    budget: RestartBudget
    current: _Envelope | None = None
    actor: Actor[Any] | None = None  # the incarnation running now, for busy()
    # tell_soon's messages that met a full inbox, oldest first; one task drains it.
    overflow: deque[_Cast] = field(default_factory=deque)
    draining: bool = False


@dataclass(frozen=True, slots=True)
class SystemStatistics:
    live_actors: int
    started: int
    crashes: int
    idle_stops: int
    overloaded: int = 0  # tell_soon messages failed past a full overflow
    tasks: int = 0  # the system's tasks: one per live actor, one per draining overflow


class ActorRef(Generic[M]):
    """A handle on a virtual actor taking messages ``M``. Cheap; survives the
    actor's restarts and idle stops."""

    __slots__ = ("_system", "kind", "key", "_cell")

    def __init__(self, system: ActorSystem, kind: str, key: str) -> None:
        self._system = system
        self.kind = kind
        self.key = key
        self._cell: _Cell | None = None

    def __repr__(self) -> str:
        return f"ActorRef({self.kind}:{self.key})"

    def _resolve(self) -> _Cell:
        cell = self._cell
        if cell is None or self._system._cells.get((self.kind, self.key)) is not cell:
            cell = self._cell = self._system._cell_for(self.kind, self.key)
        return cell

    async def _send(self, env: _Envelope) -> None:
        # An idle stop closes the old inbox; one retry reaches the new incarnation.
        for _ in range(2):
            try:
                await self._resolve().send.send(env)
                return
            except trio.ClosedResourceError:
                self._cell = None
        raise ActorUnavailable(f"{self.kind}:{self.key} keeps stopping")

    async def tell(self, msg: M) -> None:
        """Queue ``msg``; waits only while the inbox is full (backpressure)."""
        await self._send(_Cast(msg))

    def tell_nowait(self, msg: M) -> None:
        """Queue ``msg`` or raise ``trio.WouldBlock`` if the inbox is full."""
        for _ in range(2):
            try:
                self._resolve().send.send_nowait(_Cast(msg))
                return
            except trio.ClosedResourceError:
                self._cell = None
        raise ActorUnavailable(f"{self.kind}:{self.key} keeps stopping")

    def tell_soon(self, msg: M, *, completion: bool = False) -> None:
        """Deliver ``msg`` without blocking the caller, even when the inbox is full.

        Past a full inbox ``msg`` waits in the actor's bounded overflow (see
        the module's rules); past that bound it is failed with
        ``overloaded``, unless it is a ``completion`` of the actor's own work.
        """
        for _ in range(2):
            cell = self._resolve()
            try:
                self._system._offer(cell, _Cast(msg), completion)
                return
            except trio.ClosedResourceError:
                self._cell = None
        raise ActorUnavailable(f"{self.kind}:{self.key} keeps stopping")

    # OTP's call(msg, timeout): the timeout is part of the contract, not a convenience.
    async def ask(self, msg: Ask[R], timeout: float | None = None) -> R:  # noqa: ASYNC109
        """Send ``msg`` and wait for the actor's answer, at most ``timeout`` seconds."""
        reply: Reply[object] = Reply()
        limit = self._system.ask_timeout if timeout is None else timeout
        with trio.move_on_after(limit):
            await self._send(_Call(msg, reply))
            # The actor answered through ``msg.answer``, which mypy checked is an R.
            return cast(R, await reply.wait())
        raise AskTimeout(f"{self.kind}:{self.key} did not answer within {limit:g}s")


ActorFactory = Callable[[str, ActorRef[M]], Actor[M]]

# Messages an actor takes from a non-empty inbox before it lets other tasks run.
_IN_A_ROW = 32


class ActorSystem:
    """Registry and supervisor of every live actor of a node."""

    def __init__(
        self,
        *,
        inbox_size: int = 1024,
        idle_seconds: float = 300.0,
        ask_timeout: float = 10.0,
        max_restarts: int = 1,
        restart_window: float = 5.0,
        overflow_size: int | None = None,
        health: StorageHealth | None = None,
    ) -> None:
        self.inbox_size = inbox_size
        self.idle_seconds = idle_seconds
        self.ask_timeout = ask_timeout
        self.policy = RestartPolicy(max_restarts, restart_window)
        self.overflow_size = inbox_size if overflow_size is None else overflow_size
        self.health = health or StorageHealth()
        # Kinds of every message type live side by side here: ``register``
        # and ``ref`` are where each kind's types are tied together.
        self._factories: dict[str, ActorFactory[Any]] = {}
        self._cells: dict[tuple[str, str], _Cell] = {}
        self._tasks = ServiceNursery("actor system", self.policy)
        self._started = 0
        self._crashes = 0
        self._idle_stops = 0
        self._overloaded = 0

    def register(self, kind: ActorKind[M], factory: ActorFactory[M]) -> None:
        self._factories[kind] = factory

    def ref(self, kind: ActorKind[M], key: str) -> ActorRef[M]:
        if kind not in self._factories:
            raise KeyError(f"no actor kind {kind!r}")
        return ActorRef(self, kind, key)

    def tell_soon_or_fail(self, kind: ActorKind[M], key: str, msg: M) -> None:
        """``tell_soon``, or ``msg.fail(error)`` when the actor cannot take it
        (the system stopping): for callers with nobody to raise to (the bus)."""
        try:
            self.ref(kind, key).tell_soon(msg)
        except ActorError as exc:
            _Cast(msg).fail(exc)

    def is_live(self, kind: str, key: str) -> bool:
        return (kind, key) in self._cells

    def live_keys(self, kind: str) -> list[str]:
        """Keys of the live actors of ``kind`` (a snapshot)."""
        return [key for (k, key) in self._cells if k == kind]

    def busy(self, kind: str) -> int:
        """How many live actors of ``kind`` have work: a message queued or in
        hand, or work in flight (``may_stop_idle`` false). A draining shutdown
        waits for this to reach 0 before it closes the sessions."""
        count = 0
        for cell in self._cells.values():
            if cell.kind != kind:
                continue
            if (
                cell.current is not None
                or cell.receive.statistics().current_buffer_used
                or cell.draining
                or (cell.actor is not None and not cell.actor.may_stop_idle())
            ):
                count += 1
        return count

    def statistics(self) -> SystemStatistics:
        return SystemStatistics(
            len(self._cells),
            self._started,
            self._crashes,
            self._idle_stops,
            self._overloaded,
            self._tasks.statistics()["tasks"],
        )

    def census(self) -> dict[str, tuple[int, int, int]]:
        """Per kind: live actors, messages queued in their inboxes, the fullest inbox."""
        out: dict[str, tuple[int, int, int]] = {}
        for (kind, _), cell in self._cells.items():
            queued = cell.receive.statistics().current_buffer_used
            live, total, most = out.get(kind, (0, 0, 0))
            out[kind] = (live + 1, total + queued, max(most, queued))
        return out

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host every actor until cancelled."""
        await self._tasks.serve(task_status=task_status)

    def _cell_for(self, kind: str, key: str) -> _Cell:
        cell = self._cells.get((kind, key))
        if cell is None:
            if not self._tasks.running:
                raise ActorUnavailable("the actor system is not running")
            send, receive = trio.open_memory_channel[_Envelope](self.inbox_size)
            cell = _Cell(kind, key, send, receive, self.policy.budget())
            self._cells[(kind, key)] = cell
            self._started += 1
            self._tasks.start_soon(self._run, cell, name=f"actor {kind}:{key}", policy=_CELL_SHELL)
        return cell

    def _offer(self, cell: _Cell, env: _Cast, completion: bool) -> None:
        """``tell_soon``'s queueing: the inbox, else the overflow, else ``overloaded``."""
        if not cell.overflow and not cell.draining:
            try:
                cell.send.send_nowait(env)
                return
            except trio.WouldBlock:
                pass
        if len(cell.overflow) >= self.overflow_size and not completion:
            self._overloaded += 1
            log.warning("%s:%s is overloaded; a message was refused", cell.kind, cell.key)
            env.fail(
                ActorError(
                    f"{cell.kind}:{cell.key} is overloaded; retry shortly.",
                    code=ErrorCode.OVERLOADED,
                )
            )
            return
        # FIFO with what waits already: once anything overflows, all later
        # tell_soon messages queue behind it.
        cell.overflow.append(env)
        if not cell.draining:
            cell.draining = True
            self._tasks.start_soon(self._drain, cell, name=f"overflow {cell.kind}:{cell.key}")

    async def _drain(self, cell: _Cell) -> None:
        # Crash-free by construction (it only sends), yet supervised like any task.
        try:
            while cell.overflow:
                env = cell.overflow.popleft()
                delivered = False
                try:
                    await cell.send.send(env)
                    delivered = True
                except trio.ClosedResourceError:
                    pass  # the incarnation stopped; _fail_all failed the rest already
                finally:
                    # Also when cancelled (shutdown): the one in hand is answered too.
                    if not delivered:
                        env.fail(ActorUnavailable(f"{cell.kind}:{cell.key} stopped"))
        finally:
            cell.draining = False

    def _unregister(self, cell: _Cell) -> None:
        if self._cells.get((cell.kind, cell.key)) is cell:
            del self._cells[(cell.kind, cell.key)]
        # Closing synchronously with unregistering means no message can land
        # in an inbox nobody will read: late senders get ClosedResourceError
        # and re-resolve to a fresh incarnation.
        cell.send.close()

    async def _run(self, cell: _Cell) -> None:
        ref: ActorRef[Any] = ActorRef(self, cell.kind, cell.key)
        ref._cell = cell
        actor: Actor[Any] | None = None

        async def incarnation() -> None:
            nonlocal actor
            actor = cell.actor = self._factories[cell.kind](cell.key, ref)
            try:
                await self._start(actor)
                await self._loop(cell, actor)
            except ActorUnavailable as exc:  # refused to exist: an end, not a crash
                self._unregister(cell)
                self._fail_all(cell, exc)
                self._abandon(actor, exc)

        def crashed(exc: Exception, restart: bool) -> None:
            self._crashes += 1
            error = self._crash_error(cell, exc)
            self._fail_all(cell, error)
            if actor is not None:
                self._abandon(actor, error)
            metrics.actor_crashed(cell.kind, restarted=restart)
            if not restart:
                self._unregister(cell)
                self._fail_all(cell, error)

        try:
            await supervise(
                incarnation,
                name=f"actor {cell.kind}:{cell.key}",
                budget=cell.budget,
                on_crash=crashed,
                quiet=is_outage,
            )
        finally:
            # Also on cancellation (shutdown): nobody may be left waiting.
            cell.actor = None  # cell -> actor -> ref -> cell would be a cycle
            self._unregister(cell)
            stopped = ActorUnavailable(f"{cell.kind}:{cell.key} stopped")
            self._fail_all(cell, stopped)
            if actor is not None:
                self._abandon(actor, stopped)

    async def _start(self, actor: Actor[Any]) -> None:
        try:
            await actor.on_start()
        except Exception as exc:
            if not is_outage(exc):
                raise
            self.health.failed(exc)
            # Not a crash: there is nothing to restart from. The next address
            # tries again, by when storage may be back.
            raise ActorUnavailable(
                "Storage is unavailable; retry shortly.", code=ErrorCode.UNAVAILABLE
            ) from exc

    def _crash_error(self, cell: _Cell, exc: Exception) -> ActorCrashed:
        # The supervisor logged it (an outage in one line, a bug with its traceback).
        if is_outage(exc):
            self.health.failed(exc)
            return ActorCrashed(
                "Storage is unavailable; retry shortly.", code=ErrorCode.UNAVAILABLE
            )
        return ActorCrashed(f"{cell.kind}:{cell.key} crashed")

    @staticmethod
    def _abandon(actor: Actor[Any], error: ActorError) -> None:
        try:
            actor.abandon(error)
        except Exception:  # a failing abandon() must not take the runtime down
            log.exception("abandon() of %r raised", actor)

    def _fail_all(self, cell: _Cell, error: ActorError) -> None:
        if cell.current is not None:
            cell.current.fail(error)
            cell.current = None
        while True:
            try:
                env = cell.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            env.fail(error)
        # Behind the inbox in arrival order, so failed after it.
        while cell.overflow:
            cell.overflow.popleft().fail(error)

    async def _loop(self, cell: _Cell, actor: Actor[Any]) -> None:
        idle = self.idle_seconds if self.idle_seconds > 0 else math.inf
        receive = cell.receive
        in_a_row = 0
        while True:
            env: _Envelope | None = None
            if in_a_row >= _IN_A_ROW:
                # Before taking a message, so a cancel here loses none.
                in_a_row = 0
                await trio.lowlevel.checkpoint()
            try:
                # Queued messages are taken without a timer and a task switch
                # each (the cost per message of a busy room); the checkpoint
                # above keeps a deep inbox from starving other tasks.
                env = receive.receive_nowait()
                in_a_row += 1
            except trio.WouldBlock:
                in_a_row = 0
                with trio.move_on_after(idle):
                    env = await receive.receive()
            if env is None:
                # The idle timer fired. Trio's cancellation is atomic, so no
                # message was lost; stop only if the inbox (and what waits
                # to enter it) is still empty.
                if (
                    receive.statistics().current_buffer_used == 0
                    and not cell.draining
                    and actor.may_stop_idle()
                ):
                    self._idle_stops += 1
                    self._unregister(cell)
                    return
                continue
            cell.current = env
            if isinstance(env, _Call):
                try:
                    env.reply.set(await actor.handle_call(env.msg))
                except Rejected as exc:
                    env.reply.fail(exc)
            else:
                await actor.handle_cast(env.msg)
            cell.current = None
