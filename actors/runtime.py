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
  the next address starts it afresh.
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
from typing import Any, Generic, Protocol, TypeVar

import trio

from actors.errors import ActorCrashed, ActorError, ActorUnavailable, AskTimeout, Rejected
from protocol.errors import ErrorCode
from realtime_server.base import metrics
from storage.outage import StorageHealth, is_outage

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        return self._value  # type: ignore[return-value]


@dataclass(slots=True)
class _Call:
    msg: Any
    reply: Reply[Any]

    def fail(self, error: ActorError) -> None:
        self.reply.fail(error)


@dataclass(slots=True)
class _Cast:
    msg: Any

    def fail(self, error: ActorError) -> None:
        fail = getattr(self.msg, "fail", None)
        if fail is not None:
            try:
                fail(error)
            except Exception:  # a failing fail() must not take the runtime down
                log.exception("fail() of %r raised", self.msg)


_Envelope = _Call | _Cast


class Actor:
    """Base class of an actor kind. Subclasses override the hooks they need."""

    def __init__(self, key: str, ref: ActorRef) -> None:
        self.key = key
        self.ref = ref

    async def on_start(self) -> None:
        """Load state. Raise ``ActorUnavailable`` to refuse to exist (e.g. no such room)."""

    async def handle_call(self, msg: Any) -> Any:
        raise ActorError(f"{type(self).__name__} does not answer {type(msg).__name__}")

    async def handle_cast(self, msg: Any) -> None:
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
    current: _Envelope | None = None
    crashes: deque[float] = field(default_factory=deque)
    actor: Actor | None = None  # the incarnation running now, for busy()


@dataclass(frozen=True, slots=True)
class SystemStatistics:
    live_actors: int
    started: int
    crashes: int
    idle_stops: int


class ActorRef:
    """A handle on a virtual actor. Cheap; survives the actor's restarts and idle stops."""

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

    async def tell(self, msg: Any) -> None:
        """Queue ``msg``; waits only while the inbox is full (backpressure)."""
        await self._send(_Cast(msg))

    def tell_nowait(self, msg: Any) -> None:
        """Queue ``msg`` or raise ``trio.WouldBlock`` if the inbox is full."""
        for _ in range(2):
            try:
                self._resolve().send.send_nowait(_Cast(msg))
                return
            except trio.ClosedResourceError:
                self._cell = None
        raise ActorUnavailable(f"{self.kind}:{self.key} keeps stopping")

    def tell_soon(self, msg: Any) -> None:
        """Deliver ``msg`` without blocking the caller, even when the inbox is full.

        For completions (a write finished) that must not be dropped and must
        not make the caller wait on the actor: past a full inbox a task in the
        system nursery waits for room.
        """
        try:
            self.tell_nowait(msg)
        except trio.WouldBlock:
            self._system._nursery_or_raise().start_soon(self._tell_or_fail, msg)

    async def _tell_or_fail(self, msg: Any) -> None:
        # A task of the system nursery: an error escaping it would take every
        # actor down. A message that cannot be delivered is failed instead.
        try:
            await self.tell(msg)
        except ActorError as exc:
            _Cast(msg).fail(exc)

    # OTP's call(msg, timeout): the timeout is part of the contract, not a convenience.
    async def ask(self, msg: Any, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Send ``msg`` and wait for the actor's answer, at most ``timeout`` seconds."""
        reply: Reply[Any] = Reply()
        limit = self._system.ask_timeout if timeout is None else timeout
        with trio.move_on_after(limit):
            await self._send(_Call(msg, reply))
            return await reply.wait()
        raise AskTimeout(f"{self.kind}:{self.key} did not answer within {limit:g}s")


ActorFactory = Callable[[str, ActorRef], Actor]


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
        health: StorageHealth | None = None,
    ) -> None:
        self.inbox_size = inbox_size
        self.idle_seconds = idle_seconds
        self.ask_timeout = ask_timeout
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.health = health or StorageHealth()
        self._factories: dict[str, ActorFactory] = {}
        self._cells: dict[tuple[str, str], _Cell] = {}
        self._nursery: trio.Nursery | None = None
        self._started = 0
        self._crashes = 0
        self._idle_stops = 0

    def register(self, kind: str, factory: ActorFactory) -> None:
        self._factories[kind] = factory

    def ref(self, kind: str, key: str) -> ActorRef:
        if kind not in self._factories:
            raise KeyError(f"no actor kind {kind!r}")
        return ActorRef(self, kind, key)

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
                or (cell.actor is not None and not cell.actor.may_stop_idle())
            ):
                count += 1
        return count

    def statistics(self) -> SystemStatistics:
        return SystemStatistics(len(self._cells), self._started, self._crashes, self._idle_stops)

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
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def _nursery_or_raise(self) -> trio.Nursery:
        if self._nursery is None:
            raise ActorUnavailable("the actor system is not running")
        return self._nursery

    def _cell_for(self, kind: str, key: str) -> _Cell:
        cell = self._cells.get((kind, key))
        if cell is None:
            nursery = self._nursery_or_raise()
            send, receive = trio.open_memory_channel[_Envelope](self.inbox_size)
            cell = _Cell(kind, key, send, receive)
            self._cells[(kind, key)] = cell
            self._started += 1
            nursery.start_soon(self._run, cell, name=f"actor {kind}:{key}")
        return cell

    def _unregister(self, cell: _Cell) -> None:
        if self._cells.get((cell.kind, cell.key)) is cell:
            del self._cells[(cell.kind, cell.key)]
        # Closing synchronously with unregistering means no message can land
        # in an inbox nobody will read: late senders get ClosedResourceError
        # and re-resolve to a fresh incarnation.
        cell.send.close()

    async def _run(self, cell: _Cell) -> None:
        ref = ActorRef(self, cell.kind, cell.key)
        ref._cell = cell
        actor: Actor | None = None
        try:
            while True:
                actor = cell.actor = self._factories[cell.kind](cell.key, ref)
                try:
                    await self._start(actor)
                    await self._loop(cell, actor)
                    return
                except ActorUnavailable as exc:
                    self._unregister(cell)
                    self._fail_all(cell, exc)
                    self._abandon(actor, exc)
                    return
                except Exception as exc:
                    self._crashes += 1
                    error = self._crash_error(cell, exc)
                    self._fail_all(cell, error)
                    self._abandon(actor, error)
                    restart = self._may_restart(cell)
                    metrics.actor_crashed(cell.kind, restarted=restart)
                    if not restart:
                        log.error(
                            "actor %s:%s over its restart budget; stopped", cell.kind, cell.key
                        )
                        self._unregister(cell)
                        self._fail_all(cell, error)
                        return
        finally:
            # Also on cancellation (shutdown): nobody may be left waiting.
            cell.actor = None  # cell -> actor -> ref -> cell would be a cycle
            self._unregister(cell)
            stopped = ActorUnavailable(f"{cell.kind}:{cell.key} stopped")
            self._fail_all(cell, stopped)
            if actor is not None:
                self._abandon(actor, stopped)

    async def _start(self, actor: Actor) -> None:
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
        if is_outage(exc):
            self.health.failed(exc)
            log.debug("actor %s:%s stopped by a storage failure: %r", cell.kind, cell.key, exc)
            return ActorCrashed(
                "Storage is unavailable; retry shortly.", code=ErrorCode.UNAVAILABLE
            )
        log.exception("actor %s:%s crashed", cell.kind, cell.key)
        return ActorCrashed(f"{cell.kind}:{cell.key} crashed")

    @staticmethod
    def _abandon(actor: Actor, error: ActorError) -> None:
        try:
            actor.abandon(error)
        except Exception:  # a failing abandon() must not take the runtime down
            log.exception("abandon() of %r raised", actor)

    def _may_restart(self, cell: _Cell) -> bool:
        now = trio.current_time()
        cell.crashes.append(now)
        while cell.crashes and cell.crashes[0] < now - self.restart_window:
            cell.crashes.popleft()
        return len(cell.crashes) <= self.max_restarts

    def _fail_all(self, cell: _Cell, error: ActorError) -> None:
        if cell.current is not None:
            cell.current.fail(error)
            cell.current = None
        while True:
            try:
                env = cell.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            env.fail(error)

    async def _loop(self, cell: _Cell, actor: Actor) -> None:
        idle = self.idle_seconds if self.idle_seconds > 0 else math.inf
        receive = cell.receive
        while True:
            env: _Envelope | None = None
            with trio.move_on_after(idle):
                env = await receive.receive()
            if env is None:
                # The idle timer fired. Trio's cancellation is atomic, so no
                # message was lost; stop only if the inbox is still empty.
                if receive.statistics().current_buffer_used == 0 and actor.may_stop_idle():
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
