"""Generation actors: one per AI answer, under one supervisor per node.

Rules:
- A generation is one task with one bounded inbox and private state (the
  deltas so far, the sessions it streams to, how it ended), touched only in
  its loop. A child task reads the provider and forwards each event to the
  inbox; it never touches the state, with one exception that changes no
  order: when the loop is parked on an empty inbox, the reader relays a batch
  of deltas itself (``_relay``, synchronous: the very step the loop would take
  next, with nothing before it). That saves a task switch per provider read,
  a good part of the relay's cost per delta.
- It is not a virtual actor of ``ActorSystem``: a generation cannot be
  re-created from storage (once it ends, its answer *is* the stored message),
  so it lives in this supervisor's nursery and is addressed by ``gen`` id
  while it runs. A crash is logged and ends that generation with an
  ``ai.error``; no other generation or room notices. It is never restarted
  (``GENERATION_POLICY``, in ``actors.supervision``'s one model): a replay
  would call the provider again.
- Frames are encoded once and the same bytes are pushed to every target
  session: the room's member sessions online at the start, plus any session
  that attaches later. A session that comes online mid-answer gets nothing
  until it sends ``ai.attach`` with the index it has; the missed deltas are
  pushed in the same loop step that adds it, so it sees no gap and no
  duplicate.
- The asking client's disconnect changes nothing: the generation does not
  belong to a socket.
- A member removed from the room (or who left it) mid-answer gets nothing
  more of it (``Leave``): the fan-out is to members, not to whoever was one
  at the start. Attach and stop check the room's members now, in storage.
- Stop cancels the reader, which leaves the provider's ``open_stream`` and so
  closes the upstream HTTP response. A second stop finds the generation
  stopping or gone and is answered ``ok`` all the same.
- How it ends, and what is kept:
  done      the answer is stored (kind "ai", sender "ai:<model>"), ``ai.done``
  stopped   the partial answer is stored if it has any text, ``ai.done``
            with status "stopped"; the message quota stays used
  failed    the partial answer is stored if it has any text, else nothing is
            and the message quota is refunded; ``ai.error``
  Token usage is recorded per answer and per user per day and month; when the
  provider sent none (stopped, failed) it is estimated.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from actors.ai_context import ai_sender
from actors.ai_link import DELTAS, END, START, AiLink
from actors.ai_providers import (
    ChatRequest,
    EventStream,
    Provider,
    ProviderError,
    Usage,
    estimate_tokens,
)
from actors.errors import ActorError
from actors.sessions import MemberSession, SessionHub
from actors.supervision import Restart, RestartPolicy, ServiceNursery, supervise
from protocol import codec
from protocol.errors import ErrorCode
from protocol.frames import Message
from protocol.frames_ai import (
    AiDelta,
    AiDeltaData,
    AiDone,
    AiDoneData,
    AiError,
    AiErrorData,
    AiFileRef,
    AiStart,
    AiStartData,
    AiUsage,
)
from realtime_server.base import metrics
from storage.ai import AiAnswer, AiStore
from storage.base import now_ms

log = logging.getLogger(__name__)

INBOX_SIZE = 256
ENDED_MEMORY = 4096  # how many ended generation ids stop() still recognises
GENERATION_POLICY = RestartPolicy(
    restart=Restart.NEVER,
    reason="a replay would call the provider again (a second bill, another answer):"
    " the stream ends with ai.error instead",
)


def periods(ms: int) -> tuple[str, str]:
    """The (day, month) usage periods of a time, UTC."""
    import time

    t = time.gmtime(ms / 1000)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}", f"{t.tm_year:04d}-{t.tm_mon:02d}"


@dataclass(slots=True)
class GenerationSpec:
    gen_id: str
    room_id: str
    user_id: str
    model: str
    provider: Provider
    request: ChatRequest
    prompt_seq: int
    members: frozenset[str]
    # Called (once) when nothing is kept, to give the quota back.
    refund: Callable[[], Awaitable[None]]
    title: str | None = None  # set the conversation's title to this when done
    conversation: bool = False  # an "ai" room: touch its updated_at
    files: list[AiFileRef] | None = None  # project files in the context (actors.ai_files)
    slot: int | None = None  # the room's slot token across nodes (``AiLink.take_slot``)


@dataclass(frozen=True, slots=True)
class StreamDeps:
    ai: AiStore
    hub: SessionHub
    frame: Callable[[bytes], bytes]  # wraps an encoded frame for the WebSocket
    post: Callable[[str, str, str, str], Awaitable[Message]]  # room, sender, cid, text
    first_token_timeout: float = 60.0
    idle_timeout: float = 30.0
    max_generations: int = 1000
    link: AiLink | None = None  # other nodes (issue 13); None on a single node
    clock: Callable[[], int] = now_ms  # the node's (realtime_server.base.clock): usage periods


# ----- messages ------------------------------------------------------------------


@dataclass(slots=True)
class _Texts:
    """Deltas the provider sent in one read: relayed in one step, one write per session."""

    texts: list[str]


@dataclass(slots=True)
class _Usage:
    usage: Usage


@dataclass(slots=True)
class _Finished:
    pass


@dataclass(slots=True)
class _Failed:
    code: ErrorCode
    message: str


@dataclass(slots=True, eq=False)
class Stop:
    done: trio.Event = field(default_factory=trio.Event)


@dataclass(frozen=True, slots=True)
class Leave:
    """``user`` is no longer a member of the room: their sessions get nothing more."""

    user: str


@dataclass(frozen=True, slots=True)
class Members:
    """The room's members now (a change made on another node): the others' sessions
    get nothing more."""

    users: frozenset[str]


@dataclass(slots=True, eq=False)
class Attach:
    """Add ``session``; push it the deltas from ``from_`` on first."""

    session: MemberSession
    from_: int
    done: trio.Event = field(default_factory=trio.Event)


@dataclass(frozen=True, slots=True)
class RemoteAttach:
    """A session on node ``origin`` attaches from ``from_``: what it gets first
    goes out through the link, in order with the live frames."""

    origin: str
    fid: int
    from_: int


@dataclass(slots=True, eq=False)
class Subscribe:
    """Add a non-socket listener (the SSE endpoint): ``sink(frame)`` must not block."""

    sink: Callable[[msgspec.Struct], None]
    from_: int = 0


# What the generation's inbox takes: its reader's provider events and other tasks' requests.
GenerationMessage = (
    _Texts
    | _Usage
    | _Finished
    | _Failed  # from its reader
    | Stop
    | Leave
    | Members
    | Attach
    | RemoteAttach
    | Subscribe  # from other tasks
)


# ----- the actor -----------------------------------------------------------------


class Generation:
    def __init__(self, spec: GenerationSpec, deps: StreamDeps) -> None:
        self.spec = spec
        self.id = spec.gen_id
        self.room_id = spec.room_id
        self.deps = deps
        self._send, self._recv = trio.open_memory_channel[GenerationMessage](INBOX_SIZE)
        self.deltas: list[str] = []
        self.sessions: dict[int, MemberSession] = {}
        self.sinks: list[Callable[[msgspec.Struct], None]] = []
        self.status = "running"
        self.usage: Usage | None = None
        self.final: msgspec.Struct | None = None  # the ai.done / ai.error sent
        self.reader_scope = trio.CancelScope()
        self.upstream_closed = trio.Event()  # set once the provider stream is left
        self.start_frame = AiStart(
            d=AiStartData(
                gen=self.id,
                room=self.room_id,
                model=spec.model,
                by=spec.user_id,
                q=spec.prompt_seq,
                sender=ai_sender(spec.model),
                files=spec.files,
            )
        )
        for user_id in spec.members:
            for session in deps.hub.sessions_of(user_id):
                self.sessions[id(session)] = session

    async def tell(self, msg: GenerationMessage) -> None:
        await self._send.send(msg)

    # ----- fan-out -----

    def _fan(self, frame: msgspec.Struct, kind: int = END) -> None:
        data = self.deps.frame(codec.encode(frame))
        if self.deps.link is not None:
            self.deps.link.frames(self.room_id, self.id, kind, data)
        gone = []
        for key, session in self.sessions.items():
            if session.close_code is not None:
                gone.append(key)
            else:
                session.push(data)
        for key in gone:
            del self.sessions[key]
        for sink in self.sinks:
            sink(frame)

    def _relay(self, texts: list[str]) -> None:
        start = len(self.deltas)
        self.deltas.extend(texts)
        self._fan_deltas(start)

    def _loop_parked(self) -> bool:
        """The loop waits on an empty inbox: nothing it has yet to see comes first."""
        stats = self._recv.statistics()
        return (
            self.status == "running"
            and stats.tasks_waiting_receive > 0
            and stats.current_buffer_used == 0
        )

    def _fan_deltas(self, start: int) -> None:
        """``ai.delta`` for each delta from ``start`` on: one frame each (the
        contract), all of them in one write per session."""
        frame, encode, deltas = self.deps.frame, codec.encode, self.deltas
        gen, room = self.id, self.room_id
        frames = [
            AiDelta(d=AiDeltaData(gen=gen, room=room, i=i, text=deltas[i]))
            for i in range(start, len(deltas))
        ]
        data = b"".join([frame(encode(f)) for f in frames])
        if self.deps.link is not None:
            self.deps.link.frames(room, gen, DELTAS, data, len(deltas))
        gone = None
        for key, session in self.sessions.items():
            if session.close_code is not None:
                gone = [*(gone or []), key]
            else:
                session.push(data)
        for key in gone or ():
            del self.sessions[key]
        for sink in self.sinks:
            for f in frames:
                sink(f)

    def _delta(self, i: int) -> AiDelta:
        return AiDelta(d=AiDeltaData(gen=self.id, room=self.room_id, i=i, text=self.deltas[i]))

    # ----- the loop -----

    async def run(self) -> None:
        self._fan(self.start_frame, START)
        error: _Failed | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            async for msg in self._recv:
                match msg:
                    case _Texts(texts):
                        self._relay(texts)
                    case _Usage(usage):
                        self.usage = usage
                    case _Finished():
                        self.status = "done"
                        break
                    case _Failed():
                        self.status, error = "failed", msg
                        break
                    case Stop(done):
                        self.status = "stopped"
                        done.set()
                        break
                    case Attach() | Subscribe():
                        self._attach(msg)
                    case RemoteAttach():
                        self._attach_remote(msg)
                    case Leave(user):
                        self._leave(user)
                    case Members(users):
                        for key in [k for k, s in self.sessions.items() if s.user_id not in users]:
                            del self.sessions[key]
                    case _:
                        raise AssertionError(f"generation cannot take {msg!r}")
            self.reader_scope.cancel()
        await self._finish(error)
        self._send.close()
        # Whatever arrived while finishing is answered now: the end frame is known.
        async for msg in self._recv:
            self._late(msg)

    def _attach(self, msg: Attach | Subscribe) -> None:
        start = min(msg.from_, len(self.deltas))
        if isinstance(msg, Attach):
            session = msg.session
            if session.close_code is None:
                # One write: the start (the attacher may never have seen it), then the deltas.
                frame = self.deps.frame
                session.push(
                    b"".join(
                        [
                            frame(codec.encode(self.start_frame)),
                            *(
                                frame(codec.encode(self._delta(i)))
                                for i in range(start, len(self.deltas))
                            ),
                        ]
                    )
                )
                if self.final is not None:
                    session.push_frame(self.final)
                else:
                    self.sessions[id(session)] = session
            msg.done.set()
        else:
            msg.sink(self.start_frame)
            for i in range(start, len(self.deltas)):
                msg.sink(self._delta(i))
            if self.final is not None:
                msg.sink(self.final)
            else:
                self.sinks.append(msg.sink)

    def _attach_remote(self, msg: RemoteAttach) -> None:
        assert self.deps.link is not None  # only the link sends RemoteAttach
        frame = self.deps.frame
        parts = [frame(codec.encode(self.start_frame))]
        start = min(max(msg.from_, 0), len(self.deltas))
        parts += [frame(codec.encode(self._delta(i))) for i in range(start, len(self.deltas))]
        if self.final is not None:
            parts.append(frame(codec.encode(self.final)))
        self.deps.link.attach_reply(
            self.room_id, self.id, msg.origin, msg.fid, b"".join(parts), self.final is not None
        )

    def _leave(self, user: str) -> None:
        for key in [k for k, s in self.sessions.items() if str(s.user_id) == user]:
            del self.sessions[key]

    def _late(self, msg: GenerationMessage) -> None:
        match msg:
            case Stop(done):
                done.set()
            case Attach() | Subscribe():
                self._attach(msg)
            case RemoteAttach():
                self._attach_remote(msg)
            case _:
                pass  # provider events after the end are dropped

    async def _read(self) -> None:
        """The child task: provider events into the inbox. Never touches state."""
        spec, send = self.spec, self._send
        first = self.deps.first_token_timeout
        # The first token is due ``first`` seconds after the request starts:
        # waiting for the response headers counts (a provider that accepts the
        # request and never answers is a timeout then, not after the SDK's own
        # AI_REQUEST_TIMEOUT). After it, each wait gets ``idle_timeout``.
        deadline = trio.current_time() + first
        silent = ProviderError(
            ErrorCode.AI_PROVIDER_TIMEOUT, f"The provider sent nothing for {first:g}s."
        )
        # After the first token the deadline trails the last one by idle_timeout
        # (moved in steps of ``step``: a gap fires within a sixteenth of it).
        idle = self.deps.idle_timeout
        step = min(0.05, idle / 16)
        with self.reader_scope:
            try:
                async with AsyncExitStack() as stack:
                    events: EventStream
                    got_text = False
                    # One scope for the whole read, its deadline moved on after
                    # each read: a scope per read costs more than the read's parsing.
                    with trio.CancelScope(deadline=deadline) as waiting:
                        events = await stack.enter_async_context(
                            spec.provider.open_stream(spec.request)
                        )
                        while batch := await events.next_batch():
                            texts = [e for e in batch if isinstance(e, str)]
                            if texts:
                                got_text = True
                                msg: _Texts | _Usage = _Texts(texts)
                                if self._loop_parked():
                                    self._relay(texts)
                                elif not _tell_nowait(send, msg):
                                    # Our own full inbox is not the provider's silence.
                                    waiting.deadline = math.inf
                                    await send.send(msg)
                            for event in batch:
                                if isinstance(event, Usage):
                                    msg = _Usage(event)
                                    if not _tell_nowait(send, msg):
                                        waiting.deadline = math.inf
                                        await send.send(msg)
                            if got_text:
                                deadline = trio.current_time() + idle
                                # Moving a scope's deadline costs a heap entry:
                                # only when it moved by more than a sixteenth.
                                if abs(deadline - waiting.deadline) >= step:
                                    waiting.deadline = deadline
                            elif waiting.deadline != deadline:
                                waiting.deadline = deadline
                    if waiting.cancelled_caught:
                        if not got_text:
                            raise silent
                        raise ProviderError(
                            ErrorCode.AI_PROVIDER_TIMEOUT,
                            f"The provider sent nothing for {idle:g}s.",
                        )
                self.upstream_closed.set()
                await send.send(_Finished())
            except ProviderError as exc:
                self.upstream_closed.set()
                await send.send(_Failed(exc.code, exc.message))
            except trio.Cancelled:
                self.upstream_closed.set()
                raise
            except Exception:
                self.upstream_closed.set()
                log.exception("generation %s: reading the provider failed", self.id)
                await send.send(_Failed(ErrorCode.INTERNAL, "Reading the AI provider failed."))

    async def _finish(self, error: _Failed | None) -> None:
        spec, deps = self.spec, self.deps
        text = "".join(self.deltas)
        usage = self.usage or Usage(
            sum(estimate_tokens(m["content"]) for m in spec.request.messages),
            estimate_tokens(text) if text else 0,
        )
        stored: Message | None = None
        at = deps.clock()
        try:
            if text:
                stored = await deps.post(self.room_id, ai_sender(spec.model), self.id, text)
                await deps.ai.add_answer(
                    AiAnswer(
                        stored.id,
                        self.room_id,
                        stored.seq,
                        self.id,
                        spec.user_id,
                        spec.model,
                        self.status,
                        usage.prompt,
                        usage.completion,
                        at,
                    )
                )
            else:
                if self.status == "failed":
                    await spec.refund()
            await deps.ai.add_usage(spec.user_id, list(periods(at)), usage.prompt, usage.completion)
            if spec.conversation:
                changes: dict[str, Any] = {"updated_at": at}
                if spec.title and self.status == "done":
                    changes["title"] = spec.title
                await deps.ai.update_conversation(self.room_id, changes)
        except (ActorError, Exception) as exc:  # storage or room failure: say so
            log.warning("generation %s: storing the answer failed: %r", self.id, exc)
            if error is None:
                error = _Failed(ErrorCode.UNAVAILABLE, "The answer could not be stored.")
        wire_usage = AiUsage(prompt=usage.prompt, completion=usage.completion, total=usage.total)
        final: msgspec.Struct
        if error is None:
            final = AiDone(
                d=AiDoneData(
                    gen=self.id,
                    room=self.room_id,
                    status="stopped" if self.status == "stopped" else "done",
                    n=len(self.deltas),
                    usage=wire_usage,
                    msg=stored,
                    files=spec.files,
                )
            )
        else:
            final = AiError(
                d=AiErrorData(
                    gen=self.id,
                    room=self.room_id,
                    code=error.code.value,
                    text=error.message,
                    n=len(self.deltas),
                    msg=stored,
                )
            )
        self._fan(final)
        self.final = final
        outcome = "failed" if error else ("stopped" if self.status == "stopped" else "done")
        metrics.ai_generation_finished(outcome, len(self.deltas))


def _tell_nowait(send: trio.MemorySendChannel[GenerationMessage], msg: GenerationMessage) -> bool:
    """Queue without yielding (the reader's next read yields anyway); False when full."""
    try:
        send.send_nowait(msg)
    except trio.WouldBlock:
        return False
    return True


# ----- the supervisor -----------------------------------------------------------


class AiStreams:
    """Every running generation of this node, by id and by room (one per room)."""

    def __init__(self, deps: StreamDeps) -> None:
        self.deps = deps
        self._tasks = ServiceNursery("AI streaming", GENERATION_POLICY)
        self._by_id: dict[str, Generation] = {}
        self._by_room: dict[str, Generation] = {}
        self._reserved: set[str] = set()
        self._ended: OrderedDict[str, str] = OrderedDict()
        self.started = 0
        self.crashed = 0

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._tasks.serve(task_status=task_status)

    def reserve(self, room_id: str) -> bool:
        """Hold ``room_id``'s one generation slot while its prompt is stored; False if taken."""
        if room_id in self._reserved or room_id in self._by_room:
            return False
        if len(self._by_id) + len(self._reserved) >= self.deps.max_generations:
            raise ActorError(
                "This server is running as many AI answers as it can; retry shortly.",
                code=ErrorCode.OVERLOADED,
            )
        self._reserved.add(room_id)
        return True

    def release(self, room_id: str) -> None:
        self._reserved.discard(room_id)

    def start(self, spec: GenerationSpec) -> Generation:
        """Start a generation in a room reserved with ``reserve``."""
        if not self._tasks.running:
            raise ActorError("AI streaming is not running.", code=ErrorCode.UNAVAILABLE)
        self._reserved.discard(spec.room_id)
        gen = Generation(spec, self.deps)
        self._by_id[gen.id] = gen
        self._by_room[gen.room_id] = gen
        self.started += 1
        self._tasks.start_soon(self._run, gen, name=f"ai generation {gen.id}")
        return gen

    async def _run(self, gen: Generation) -> None:
        def crashed(_exc: Exception, _restarting: bool) -> None:
            # GENERATION_POLICY never restarts: the stream fails instead.
            self.crashed += 1
            gen.final = AiError(
                d=AiErrorData(
                    gen=gen.id,
                    room=gen.room_id,
                    code=ErrorCode.INTERNAL.value,
                    text="The AI answer failed.",
                    n=len(gen.deltas),
                )
            )
            gen._fan(gen.final)

        try:
            name = f"generation {gen.id}"
            await supervise(gen.run, name=name, policy=GENERATION_POLICY, on_crash=crashed)
        finally:
            link, slot = self.deps.link, gen.spec.slot
            if link is not None and slot is not None:
                # Given back before the room's local slot is free: a next ask
                # here takes it anew (its own token) only after this.
                with trio.CancelScope(shield=True):
                    await link.free_slot(gen.room_id, slot)
            del self._by_id[gen.id]
            if self._by_room.get(gen.room_id) is gen:
                del self._by_room[gen.room_id]
            self._ended[gen.id] = gen.status
            while len(self._ended) > ENDED_MEMORY:
                self._ended.popitem(last=False)

    def get(self, gen_id: str) -> Generation | None:
        return self._by_id.get(gen_id)

    def running_in(self, room_id: str) -> Generation | None:
        return self._by_room.get(room_id)

    def has_ended(self, gen_id: str) -> bool:
        return gen_id in self._ended

    def __len__(self) -> int:
        return len(self._by_id)
