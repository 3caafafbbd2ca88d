"""AI generations across nodes (issue 13): the node's side of ``actors.ai_link``.

Where a generation runs: on the node where its ask arrived (that is where
the asking REST/SSE response and the provider's stream are). Not on the
room's leader: an ask is heavy to forward (quota decision, context, an SSE
sink that lives in the asking node's HTTP response), and the answer is
stored with ``post_as``, which reaches the room's leader from any node.

The room's ONE generation slot, across nodes: a lease in the database's
``room_leases`` under ``ai:<room>`` (``Leases.take_slot``), taken after the
local slot and before the quota, held while the generation runs, given back
when it ends. Two asks in one room on two nodes at once meet on that row's
lock: one takes it, the other finds a live holder and answers ``ai_busy``.
A node that dies while generating leaves its slot to whoever asks after its
node lease ran out (``NODE_LEASE_SECONDS``). Each take has its own token, so
giving back an old take (a retried release) never frees a newer one. A node
paused past its lease may see its slot taken meanwhile: for that moment two
answers may run in the room (each stored as a normal message; nothing about
seq or storage depends on the slot).

Frames to member devices elsewhere: the generation hands every batch it
pushes to its local sessions (already framed for the socket, built once) to
``frames``; it goes out once on ``r:<room>`` (``AiFrames``), whatever the
number of members or nodes. Each node listening on the room (it has an online
member: ``ClusterRooms``) keeps a *mirror* of the generation: the local member
sessions online at its start plus those that attach later, exactly the set
the generation itself keeps, and pushes the same bytes to each. A member
removed from the room stops receiving at once (the mirror pushes only to the
room's current local members).

A generating node that dies: every lease period this node checks the node
lease of each generation it mirrors; when it has run out (killed, cut off,
paused past its lease), or when no frame came for ``stale_after``, the
mirrored sessions get a terminal ``ai.error`` (``unavailable``) instead of
silence, and the mirror goes. The prompt is stored; the answer is not (ask
again). A paused node that comes back later may still store its answer: it
arrives as a normal message.

Attach and stop from another node: the attaching node finds the slot's
holder (its mirror, else the lease row) and asks it on ``n:<node>/ai``; the
generation answers in its own loop with ``AiAttached`` on ``r:<room>``, so
the catch-up (start, the deltas from ``from``, the end if it came) is in
order with the live deltas on the same channel: no gap, no duplicate. A stop
goes to the node of the mirror, or to the holders of the AI slots of the
stopper's rooms (one query), and is answered on ``n:<origin>/ai``. Stopping
an answer this node saw end is answered ``ok``, as on one node.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from actors.ai_link import END, START
from actors.ai_stream import Members, RemoteAttach
from actors.errors import ActorError
from actors.supervision import ServiceNursery
from protocol import codec
from protocol.errors import ErrorCode
from protocol.frames_ai import AiError, AiErrorData
from realtime_server.cluster.bus import BusUnavailable
from realtime_server.cluster.envelopes import members_decoder
from storage.errors import StoreError
from storage.leases import Leases

if TYPE_CHECKING:
    from actors.ai_service import AiService
    from realtime_server.cluster.rooms import ClusterRooms

log = logging.getLogger(__name__)

ENDED_MEMORY = 4096  # generations seen ending here, for a late stop's ``ok``
_BUS_DOWN = "The node running this AI answer cannot be reached (bus down); retry shortly."
_SILENT = "The node running this AI answer did not answer; retry shortly."
_LOST_NODE = "The server running this AI answer stopped before it ended; ask again."


# ----- on the bus ------------------------------------------------------------------


class AiFrames(msgspec.Struct, tag="ai.f", gc=False):
    """On ``r:<room>``: frames of generation ``gen`` run by ``node`` (``kind``:
    start, deltas or end), framed for the socket once by that node."""

    room: str
    gen: str
    node: str
    kind: int
    data: bytes
    n: int = 0  # deltas sent so far


class AiAttached(msgspec.Struct, tag="ai.a", gc=False):
    """On ``r:<room>``: what the session attaching on ``origin`` (request ``fid``)
    gets first; ``ended``: the end frame is in ``data``, nothing follows."""

    room: str
    gen: str
    node: str
    origin: str
    fid: int
    data: bytes
    ended: bool


class StopAsk(msgspec.Struct, tag="ai.stop", gc=False):
    """On ``n:<node>/ai``: ``user`` stops ``gen`` (empty: ``room``'s running one)."""

    origin: str
    fid: int
    user: str
    gen: str
    room: str = ""


class AttachAsk(msgspec.Struct, tag="ai.attach", gc=False):
    """On ``n:<node>/ai``: a session of ``user`` attaches to ``room``'s generation."""

    origin: str
    fid: int
    user: str
    room: str
    gen: str | None
    from_: int


class RunningAsk(msgspec.Struct, tag="ai.running", gc=False):
    """On ``n:<node>/ai``: which generations run there in ``rooms`` (REST's ``running``)."""

    origin: str
    fid: int
    rooms: list[str]


class AiAnswer(msgspec.Struct, tag="ai.ok", gc=False):
    """On ``n:<origin>/ai``: how request ``fid`` went (``code`` empty: ok);
    ``running``: the answer to a ``RunningAsk`` (room -> generation id)."""

    fid: int
    code: str = ""
    text: str = ""
    running: dict[str, str] | None = None


_room_decoder = msgspec.msgpack.Decoder(AiFrames | AiAttached)
_node_decoder = msgspec.msgpack.Decoder(StopAsk | AttachAsk | RunningAsk | AiAnswer)
_encoder = msgspec.msgpack.Encoder()
# The room channel carries the rooms' traffic too (many more messages than
# ours): the tag is the first key of every envelope, so a look at its bytes
# tells ours apart without decoding the others (tests/cluster/test_ai.py
# checks the layout this relies on).
_OURS = slice(7, 10)


def is_ai_traffic(payload: bytes) -> bool:
    return payload[_OURS] == b"ai."


@dataclass(slots=True, eq=False)
class _Mirror:
    """A generation of another node as this node streams it: to these sessions."""

    room: str
    gen: str
    node: str
    sessions: dict[int, Any] = field(default_factory=dict)
    touched: float = 0.0
    n: int = 0  # deltas sent so far, as its node last said


@dataclass(slots=True, eq=False)
class _Waiting:
    session: Any = None  # an attach's session
    done: trio.Event = field(default_factory=trio.Event)
    code: str = ""
    text: str = ""
    running: dict[str, str] | None = None


class ClusterAi:
    def __init__(self, rooms: ClusterRooms, *, ask_timeout: float, stale_after: float) -> None:
        self.rooms = rooms
        self.cluster = rooms.cluster
        self.bus = rooms.bus
        self.node_key = rooms.node_key
        self.hub = rooms.hub
        self.store = rooms.store
        self.leases = Leases(rooms.store.db)
        self.ask_timeout = ask_timeout
        self.stale_after = stale_after  # a mirror silent this long lost its end
        self.service: AiService | None = None  # set by the node once built
        self._mirrors: dict[str, _Mirror] = {}
        self._room_gen: dict[str, str] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._waiting: dict[int, _Waiting] = {}
        self._fids = itertools.count(1)
        self._unfreed: list[tuple[str, int]] = []  # slots whose release failed
        self._tasks = ServiceNursery("cluster AI")
        self.unpublished = 0  # frames the bus refused (metrics, tests)
        rooms.room_handlers.append(self._on_room)

    def _channel(self, node_key: str) -> str:
        return self.cluster.node_channel(node_key) + "/ai"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.bus.subscribe(self._channel(self.node_key), self._on_node)
        self.bus.subscribe(f"{self.cluster.prefix}members", self._on_members)
        await self.bus.wait_subscribed()
        await self._tasks.serve(self._sweep_forever, task_status=task_status)

    async def _sweep_forever(self) -> None:
        checked = trio.current_time()
        while True:
            await trio.sleep(1)
            self._sweep()
            if trio.current_time() - checked >= self.rooms.lease_seconds:
                checked = trio.current_time()
                await self._check_nodes()
            if self._unfreed:
                unfreed, self._unfreed = self._unfreed, []
                for room_id, token in unfreed:
                    await self.free_slot(room_id, token)

    def _sweep(self) -> None:
        cutoff = trio.current_time() - self.stale_after
        for mirror in [m for m in self._mirrors.values() if m.touched < cutoff]:
            log.warning("AI answer %s of %s: its end never came; dropped", mirror.gen, mirror.node)
            self._fail(mirror)

    async def _check_nodes(self) -> None:
        """End the mirrors of generations whose node's lease ran out (it died)."""
        for node in sorted({m.node for m in self._mirrors.values()}):
            try:
                alive = await self.leases.alive(node)
            except StoreError as exc:
                log.debug("AI: node %s not checked (%r)", node, exc)
                continue
            if alive:
                continue
            for mirror in [m for m in self._mirrors.values() if m.node == node]:
                log.warning(
                    "AI answer %s: its node %s is gone; ended as unavailable", mirror.gen, node
                )
                self._fail(mirror)

    def _fail(self, mirror: _Mirror) -> None:
        """A terminal ``ai.error`` to the mirror's sessions, and the mirror goes."""
        error = AiError(
            d=AiErrorData(
                gen=mirror.gen,
                room=mirror.room,
                code=ErrorCode.UNAVAILABLE.value,
                text=_LOST_NODE,
                n=mirror.n,
            )
        )
        self._push(mirror, self.rooms.frame(codec.encode(error)))
        self._drop(mirror)
        self._ended[mirror.gen] = None

    def _spawn(self, fn: Any, *args: Any) -> None:
        self._tasks.start_if_running(fn, *args)

    def _service(self) -> AiService:
        assert self.service is not None, "the node binds the AI service before serving"
        return self.service

    # ----- the slot (actors.ai_link) ---------------------------------------------

    async def take_slot(self, room_id: str) -> int | None:
        try:
            return await self.leases.take_slot(f"ai:{room_id}", self.node_key)
        except StoreError as exc:
            raise ActorError(
                "The AI slot of this room cannot be taken now; retry shortly.",
                code=ErrorCode.UNAVAILABLE,
            ) from exc

    async def free_slot(self, room_id: str, token: int) -> None:
        failed: Exception | None = None
        with trio.move_on_after(5) as waiting:
            try:
                await self.leases.free_slot(f"ai:{room_id}", self.node_key, token)
            except StoreError as exc:
                failed = exc
        if failed is not None or waiting.cancelled_caught:
            # Retried from ``serve``; meanwhile asks in this room on other nodes
            # hear ``ai_busy`` (here, the next take is this node's anyway).
            log.warning("AI slot of %s not given back (%r); retrying", room_id, failed)
            self._unfreed.append((room_id, token))

    # ----- frames out --------------------------------------------------------------

    def frames(self, room_id: str, gen_id: str, kind: int, data: bytes, n: int = 0) -> None:
        self._publish_room(room_id, AiFrames(room_id, gen_id, self.node_key, kind, data, n))

    def attach_reply(
        self, room_id: str, gen_id: str, origin: str, fid: int, data: bytes, ended: bool
    ) -> None:
        self._publish_room(
            room_id, AiAttached(room_id, gen_id, self.node_key, origin, fid, data, ended)
        )

    def _publish_room(self, room_id: str, envelope: AiFrames | AiAttached) -> None:
        try:
            self.bus.publish(self.cluster.room_channel(room_id), _encoder.encode(envelope))
        except BusUnavailable:
            # Devices elsewhere miss these frames; the stored answer reaches them by resume.
            self.unpublished += 1

    # ----- frames in ---------------------------------------------------------------

    def _on_room(self, payload: bytes) -> None:
        if not is_ai_traffic(payload):
            return  # the room's own traffic (ClusterRooms)
        try:
            msg = _room_decoder.decode(payload)
        except msgspec.DecodeError:
            log.warning("room channel: undecodable AI message dropped")
            return
        if isinstance(msg, AiAttached):
            self._attached(msg)
            return
        if msg.kind == START:
            mirror = _Mirror(msg.room, msg.gen, msg.node)
            for user in self.rooms.users_here(msg.room):
                for session in self.hub.sessions_of(user):
                    mirror.sessions[id(session)] = session
            self._mirrors[msg.gen] = mirror
            self._room_gen[msg.room] = msg.gen
        else:
            found = self._mirrors.get(msg.gen)
            if found is None:
                return  # nobody here had it (nor attached to it)
            mirror = found
        mirror.n = max(mirror.n, msg.n)
        self._push(mirror, msg.data)
        if msg.kind == END:
            self._drop(mirror)
            self._ended[msg.gen] = None
            while len(self._ended) > ENDED_MEMORY:
                self._ended.popitem(last=False)

    def _push(self, mirror: _Mirror, data: bytes) -> None:
        """The same bytes to every session of the mirror whose user is still a member."""
        mirror.touched = trio.current_time()
        members = self.rooms.users_here(mirror.room)
        gone = None
        for key, session in mirror.sessions.items():
            if session.close_code is not None or session.user_id not in members:
                gone = [*(gone or []), key]
            else:
                session.push(data)
        for key in gone or ():
            del mirror.sessions[key]

    def _drop(self, mirror: _Mirror) -> None:
        self._mirrors.pop(mirror.gen, None)
        if self._room_gen.get(mirror.room) == mirror.gen:
            del self._room_gen[mirror.room]

    def _attached(self, msg: AiAttached) -> None:
        if msg.origin != self.node_key:
            return
        waiting = self._waiting.get(msg.fid)
        if waiting is None:
            return  # given up meanwhile: the client heard ``unavailable``
        session = waiting.session
        if session.close_code is None:
            session.push(msg.data)
            if not msg.ended:
                mirror = self._mirrors.get(msg.gen)
                if mirror is None:
                    mirror = self._mirrors[msg.gen] = _Mirror(msg.room, msg.gen, msg.node)
                    self._room_gen[msg.room] = msg.gen
                mirror.touched = trio.current_time()
                mirror.sessions[id(session)] = session
        waiting.done.set()

    # ----- requests to the node running a generation -------------------------------

    async def _ask(self, node: str, make: Any, session: Any = None) -> _Waiting:
        """Send ``make(fid)`` to ``node`` and wait for its answer (or attach reply)."""
        fid = next(self._fids)
        waiting = self._waiting[fid] = _Waiting(session)
        try:
            try:
                self.bus.publish(self._channel(node), _encoder.encode(make(fid)))
            except BusUnavailable:
                raise ActorError(_BUS_DOWN, code=ErrorCode.UNAVAILABLE) from None
            with trio.move_on_after(self.ask_timeout):
                await waiting.done.wait()
            if not waiting.done.is_set():
                raise ActorError(_SILENT, code=ErrorCode.UNAVAILABLE)
            return waiting
        finally:
            del self._waiting[fid]

    @staticmethod
    def _raise(waiting: _Waiting) -> None:
        try:
            code = ErrorCode(waiting.code)
        except ValueError:
            code = ErrorCode.INTERNAL
        raise ActorError(waiting.text or None, code=code)

    async def stop(self, user_id: str, gen_id: str) -> bool:
        if gen_id in self._ended:
            return True  # it ended: stopping it now is ``ok``, as on one node
        mirror = self._mirrors.get(gen_id)
        if mirror is not None:
            nodes = [mirror.node]
        else:
            nodes = await self._generating_for(user_id)
        for node in nodes:
            answer = await self._ask(node, lambda fid: StopAsk(self.node_key, fid, user_id, gen_id))
            if not answer.code:
                return True
            if answer.code != ErrorCode.NOT_FOUND.value:
                self._raise(answer)
        return False

    async def stop_room(self, user_id: str, room_id: str) -> None:
        """Stop ``room_id``'s generation wherever it runs (a conversation is deleted)."""
        node = await self._slot_holder(room_id)
        if node is not None:
            answer = await self._ask(
                node, lambda fid: StopAsk(self.node_key, fid, user_id, "", room_id)
            )
            if answer.code and answer.code != ErrorCode.NOT_FOUND.value:
                self._raise(answer)

    async def _slot_holder(self, room_id: str) -> str | None:
        """The live other node running ``room_id``'s generation, if any."""
        known = self._room_gen.get(room_id)
        if known is not None:
            return self._mirrors[known].node
        try:
            holder = await self.leases.holder(f"ai:{room_id}")
            if holder is None or holder.node_key in ("", self.node_key):
                return None
            if not await self.leases.alive(holder.node_key):
                return None  # its node died: the answer went with it
        except StoreError as exc:
            raise ActorError(
                "Cannot find the AI answer's node now; retry shortly.",
                code=ErrorCode.UNAVAILABLE,
            ) from exc
        return holder.node_key

    async def _generating_for(self, user_id: str) -> list[str]:
        """The other live nodes holding an AI slot of one of ``user_id``'s rooms."""
        db = self.store.db
        try:
            rows = await db.fetch(
                "SELECT DISTINCT l.node_key FROM room_members m"
                " JOIN room_leases l ON l.room_id = 'ai:' || m.room_id"
                " JOIN node_leases n ON n.node_key = l.node_key"
                f" AND n.expires_at >= {db.dialect.now_ms()}"
                " WHERE m.user_id = ? AND l.node_key <> ?",
                (user_id, self.node_key),
            )
        except StoreError as exc:
            raise ActorError(
                "Cannot find the AI answer's node now; retry shortly.",
                code=ErrorCode.UNAVAILABLE,
            ) from exc
        return [str(r[0]) for r in rows]

    async def running(self, room_ids: Sequence[str]) -> dict[str, str]:
        """The generations other live nodes run in these rooms: what this node
        mirrors, else one query for the slots' holders and one ask per holder."""
        found = {r: self._room_gen[r] for r in room_ids if r in self._room_gen}
        rest = [r for r in room_ids if r not in found]
        if not rest:
            return found
        db = self.store.db
        d = db.dialect
        try:
            rows = await db.fetch(
                "SELECT l.room_id, l.node_key FROM room_leases l"
                " JOIN node_leases n ON n.node_key = l.node_key"
                f" AND n.expires_at >= {d.now_ms()}"
                f" WHERE {d.in_list('l.room_id')} AND l.node_key <> ?",
                (d.array(f"ai:{r}" for r in rest), self.node_key),
            )
        except StoreError as exc:
            raise ActorError(
                "Cannot find the AI answers' nodes now; retry shortly.",
                code=ErrorCode.UNAVAILABLE,
            ) from exc
        by_node: dict[str, list[str]] = {}
        for key, node in rows:
            by_node.setdefault(str(node), []).append(str(key).removeprefix("ai:"))
        for node, rooms in sorted(by_node.items()):
            answer = await self._ask(node, partial(RunningAsk, self.node_key, rooms=rooms))
            found.update(answer.running or {})
        return found

    async def attach(
        self, user_id: str, session: Any, room_id: str, gen_id: str | None, from_: int
    ) -> bool:
        node = await self._slot_holder(room_id)
        if node is None:
            return False
        answer = await self._ask(
            node,
            lambda fid: AttachAsk(self.node_key, fid, user_id, room_id, gen_id, from_),
            session,
        )
        if answer.code == ErrorCode.NOT_FOUND.value:
            return False
        if answer.code:
            self._raise(answer)
        return True

    # ----- requests from other nodes -----------------------------------------------

    def _on_node(self, payload: bytes) -> None:
        try:
            msg = _node_decoder.decode(payload)
        except msgspec.DecodeError:
            log.warning("node channel: undecodable AI message dropped")
            return
        match msg:
            case StopAsk():
                self._spawn(self._serve_stop, msg)
            case AttachAsk():
                self._spawn(self._serve_attach, msg)
            case RunningAsk(origin, fid, rooms):
                streams = self._service().streams
                running = {r: g.id for r in rooms if (g := streams.running_in(r)) is not None}
                self._publish_answer(origin, AiAnswer(fid, running=running))
            case AiAnswer(fid, code, text, running):
                waiting = self._waiting.get(fid)
                if waiting is not None:
                    waiting.code, waiting.text, waiting.running = code, text, running
                    waiting.done.set()

    def _answer(self, origin: str, fid: int, code: str = "", text: str = "") -> None:
        self._publish_answer(origin, AiAnswer(fid, code, text))

    def _publish_answer(self, origin: str, answer: AiAnswer) -> None:
        try:
            self.bus.publish(self._channel(origin), _encoder.encode(answer))
        except BusUnavailable:
            log.debug("AI answer %d to %s lost: bus down", answer.fid, origin)

    async def _serve_stop(self, msg: StopAsk) -> None:
        service = self._service()
        gen_id = msg.gen
        if not gen_id:
            running = service.streams.running_in(msg.room)
            if running is None:
                self._answer(msg.origin, msg.fid)  # ended meanwhile: nothing to stop
                return
            gen_id = running.id
        try:
            await service.stop(msg.user, gen_id, forward=False)
        except ActorError as exc:
            self._answer(msg.origin, msg.fid, exc.code.value, exc.message)
        else:
            self._answer(msg.origin, msg.fid)

    async def _serve_attach(self, msg: AttachAsk) -> None:
        # The asking node checked membership (storage, now); nodes trust each other.
        gen = self._service().streams.running_in(msg.room)
        if gen is None or (msg.gen is not None and gen.id != msg.gen):
            self._answer(msg.origin, msg.fid, ErrorCode.NOT_FOUND.value)
            return
        try:
            await gen.tell(RemoteAttach(msg.origin, msg.fid, msg.from_))
        except trio.ClosedResourceError:
            self._answer(msg.origin, msg.fid, ErrorCode.NOT_FOUND.value)

    # ----- membership changes made on other nodes ------------------------------------

    def _on_members(self, payload: bytes) -> None:
        try:
            notice = members_decoder.decode(payload)
        except msgspec.DecodeError:
            return  # ClusterRooms logs it
        if not notice.blocks and self.service is not None:
            if self.service.streams.running_in(notice.room) is not None:
                self._spawn(self._recheck_members, notice.room)

    async def _recheck_members(self, room_id: str) -> None:
        """A member removed on another node gets nothing more of the answer running here."""
        gen = self._service().streams.running_in(room_id)
        if gen is None:
            return
        try:
            room = await self.store.get_room(room_id)
        except StoreError as exc:
            log.warning("room %s: members not re-read for its AI answer (%r)", room_id, exc)
            return
        members = frozenset(m.user_id for m in room.members) if room is not None else frozenset()
        try:
            await gen.tell(Members(members))
        except trio.ClosedResourceError:
            pass  # it ended meanwhile
