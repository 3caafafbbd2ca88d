"""Rooms across nodes (issue 13): who leads a room, forwarding to the leader,
and fan-out of what the leader published.

The node's part, beside the room actors' (``actors.room_link``):

- **Listening.** A node listens on ``r:<room>`` for every room one of its
  online users belongs to: when a user's first session arrives, their rooms
  are read (one query) and subscribed, and the session's replay starts only
  once the broker has the subscriptions (``ready``), so nothing committed in
  between is lost. A membership change anywhere is announced on the
  deployment's ``members`` channel; every node re-reads that room for its
  online users, so a removed member stops receiving everywhere at once.
- **Fan-out.** A batch from the leader is framed once here and queued to
  every local member session with the same one-write-per-session path as on
  the leader (``actors.room.deliver``). Posts this node forwarded are acked
  from that batch, in seq order with the rest.
- **Forwarding.** A follower actor hands posts and changes to ``forward``:
  they go to ``n:<leader>`` with a number (``fid``) and wait here. The answer
  is the batch (posts), or an ``Answered`` message. Unanswered after
  ``NODE_LEASE_SECONDS`` + 0.5 s, the post goes back to the room actor as a
  ``Reforward``: it claims the room again (taking it over if the leader is
  dead) and handles or re-forwards it. A resend of the same post is safe: the
  leader answers a known cid with the stored message. After ``ASK_TIMEOUT``
  the sender hears ``unavailable``.
- **One message per tick.** What a node forwards to one leader within one
  scheduler tick goes out as ONE bus message (``Forwards``), in order: under
  load the bus carries a few messages per tick, not one per post. The leader
  handles the items one by one, exactly as if they had come alone.
- **Node lease.** Renewed every quarter of ``NODE_LEASE_SECONDS``, on a
  connection of its own (a loaded pool must not let it lapse). A renewal
  that finds the lease had run out (the process was paused or cut off) logs
  an error and makes every room actor here claim its room again before its
  next write: the fence would refuse that write anyway, this only makes the
  step-down prompt.
- **Bus down.** Forwarding refuses at once with ``unavailable`` (the client
  resends); local rooms keep working; a batch that could not be published is
  logged and counted, and remote members get it by resume.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import trio

from actors.errors import ActorUnavailable
from actors.room import (
    ROOM,
    BlocksChanged,
    MembersChanged,
    Post,
    PostAs,
    RoomMessage,
    _Pending,
    deliver,
)
from actors.room_changes import EV_KEY, Change, ExpireData, Skip
from actors.room_link import (
    Answer,
    Forwarded,
    Reclaim,
    Reforward,
    RemoteChange,
    RemotePost,
)
from actors.room_rules import to_wire
from actors.runtime import ActorSystem
from actors.supervision import ServiceNursery, every
from protocol.errors import ErrorCode
from protocol.frames import Message
from protocol.frames_chat import (
    DeleteData,
    DisappearData,
    EditData,
    PinData,
    ReactData,
    ReceiptData,
)
from realtime_server.cluster import Cluster
from realtime_server.cluster.bus import BusUnavailable
from realtime_server.cluster.envelopes import (
    Answered,
    Batch,
    Event,
    ForwardChange,
    ForwardPost,
    Forwards,
    Members,
    ToUser,
    encoder,
    members_decoder,
    node_decoder,
    room_decoder,
)
from realtime_server.hub import Hub
from realtime_server.session import Session
from storage.base import Store
from storage.errors import StoreError
from storage.leases import Holder, Leases
from storage.memberships import memberships
from storage.sql.store import SqlStore

log = logging.getLogger(__name__)

_OPS: dict[str, type] = {
    t.__name__: t
    for t in (EditData, DeleteData, ReactData, ReceiptData, PinData, DisappearData, ExpireData)
}
_NOBODY: frozenset[str] = frozenset()
_LOST = "The room's node did not answer; resend with the same cid."
_BUS_DOWN = "The node leading this room cannot be reached (bus down); retry shortly."


@dataclass(slots=True, eq=False)
class _Forwarded:
    msg: Post | PostAs | Change  # a local request waiting for the leader
    room: str
    key: tuple[str, str, str] | None  # (room, sender, cid) of a post
    deadline: float  # re-forward after this
    give_up: float  # answer unavailable after this
    since: float


class ClusterRooms:
    def __init__(
        self,
        cluster: Cluster,
        store: Store,
        hub: Hub,
        system: ActorSystem,
        frame: Callable[[bytes], bytes],
        *,
        lease_seconds: float,
        ask_timeout: float,
        resume_max: int = 5000,
    ) -> None:
        self.cluster = cluster
        self.bus = cluster.bus
        self.node_key = cluster.node_key
        self.store = store
        self.leases = Leases(store.db)
        # Renewals on their own connection where there is one (SqlStore on
        # PostgreSQL): never queued behind the node's own load.
        self._renewals = Leases(store.lease_db if isinstance(store, SqlStore) else store.db)
        self.hub = hub
        self.system = system
        self.frame = frame
        self.lease_seconds = lease_seconds
        self.forward_timeout = lease_seconds + 0.5
        self.ask_timeout = ask_timeout
        self.resume_max = resume_max
        self._members_channel = f"{cluster.prefix}members"
        # Room -> online users here who belong to it; user -> their rooms.
        self._local: dict[str, set[str]] = {}
        self._rooms_of: dict[str, set[str]] = {}
        self._loading: dict[str, trio.Event] = {}
        self._forwards: dict[int, _Forwarded] = {}
        self._fid_of: dict[int, int] = {}  # id(request) -> fid, while it waits
        self._by_post: dict[tuple[str, str, str], int] = {}
        self._fids = itertools.count(1)
        # Forwards of this tick, per leader, until ``_flush_forwards`` sends them.
        self._outbox: dict[str, list[ForwardPost | ForwardChange]] = {}
        self._outbox_ready = trio.Event()
        # Room -> highest seq fanned out here; batches buffered while a gap is
        # read from storage (the bus may lose messages; storage has them all).
        self._seen: dict[str, int] = {}
        self._repairing: dict[str, list[Batch]] = {}
        self._tasks = ServiceNursery("cluster rooms")  # repairs and loads: each re-reads
        # Who listens on the channels of this node's rooms: these, and others
        # with tags of their own (AI frames, ``cluster.ai``).
        self.room_handlers: list[Callable[[bytes], None]] = [self._on_room]
        self.repairs = 0  # gaps filled from storage (metrics, tests)
        # Told the room whose members changed, on every node (caches to drop).
        self.on_members: list[Callable[[str], None]] = []
        self.unpublished = 0  # batches and events the bus refused (metrics, tests)
        self.lapses = 0  # times the node lease was found run out

    # ----- running ------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew the node lease, time out forwards; until cancelled."""
        await self._renewals.renew(self.node_key, self.lease_seconds)
        self.hub.on_user(self._user_arrived, self._user_left)
        self.bus.subscribe(self.cluster.node_channel(self.node_key), self._on_node)
        self.bus.subscribe(self._members_channel, self._on_members)
        self.bus.on_reconnect(self._reconnected)
        await self.bus.wait_subscribed()
        await self._tasks.serve(self._expire_forwards_forever, task_status=task_status)

    async def _expire_forwards_forever(self) -> None:
        self._tasks.start_soon(self._renew_forever)
        self._tasks.start_soon(self._flush_forwards)
        await every(0.1, self._expire_forwards)

    async def _renew_forever(self) -> None:
        every = self.lease_seconds / 4
        while True:
            await trio.sleep(every)
            started = trio.current_time()
            try:
                kept = await self._renewals.renew(self.node_key, self.lease_seconds)
            except StoreError as exc:
                log.warning("node lease: renewal failed: %r", exc)
                continue
            took = trio.current_time() - started
            if took > every:
                log.warning(
                    "node lease: a renewal took %.2fs (lease %gs)", took, self.lease_seconds
                )
            if not kept:
                self.lapses += 1
                log.error(
                    "node %s: its lease had run out (paused or cut off for more than %gs);"
                    " rooms it led may have moved: every room here claims again",
                    self.node_key,
                    self.lease_seconds,
                )
                for key in self.system.live_keys(ROOM):
                    self._tell(key, Reclaim())

    async def release(self) -> None:
        """A graceful stop: this node's rooms go to other nodes at once."""
        try:
            await self.leases.release(self.node_key)
        except StoreError as exc:
            log.warning("node lease: release failed (rooms move when it runs out): %r", exc)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        self._tasks.start_if_running(fn, *args)

    def _tell(self, room: str, msg: RoomMessage) -> None:
        self.system.tell_soon_or_fail(ROOM, room, msg)

    # ----- the link of room actors (actors.room_link.RoomLink) ------------------

    async def claim(self, room_id: str) -> Holder:
        return await self.leases.claim(room_id, self.node_key)

    def forward(self, owner: str, room_id: str, msg: Forwarded) -> None:
        if isinstance(msg, RemotePost):
            # Forwarded to us, and we do not lead (any more): pass it on; its
            # origin keeps the time.
            envelope: ForwardPost | ForwardChange = ForwardPost(
                room_id,
                msg.origin,
                msg.fid,
                msg.sender_id,
                msg.cid,
                msg.text,
                msg.kind,
                msg.meta,
                msg.system,
                msg.reply_to,
                msg.batch_ack,
            )
        elif isinstance(msg, RemoteChange):
            envelope = self._change_envelope(room_id, msg.origin, msg.fid, msg, msg.skip)
        else:
            fid = self._track(room_id, msg)
            if isinstance(msg, Post | PostAs):
                listening = room_id in self._local
                envelope = ForwardPost(
                    room_id,
                    self.node_key,
                    fid,
                    msg.sender_id,
                    msg.cid,
                    msg.text,
                    msg.kind,
                    msg.meta,
                    isinstance(msg, PostAs) and msg.system,
                    msg.reply_to,
                    batch_ack=listening,
                )
            else:
                skip = self._skip_key(msg.session)
                envelope = self._change_envelope(room_id, self.node_key, fid, msg, skip)
        if not self.bus.up:
            self._untrack(msg)
            raise ActorUnavailable(_BUS_DOWN, code=ErrorCode.UNAVAILABLE)
        self._outbox.setdefault(owner, []).append(envelope)
        self._outbox_ready.set()

    async def _flush_forwards(self) -> None:
        """Send what was forwarded since the last flush: one message per leader."""
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready = trio.Event()
            outbox, self._outbox = self._outbox, {}
            for owner, items in outbox.items():
                envelope = items[0] if len(items) == 1 else Forwards(items)
                try:
                    self.bus.publish(self.cluster.node_channel(owner), encoder.encode(envelope))
                except BusUnavailable:
                    for item in items:
                        self._not_forwarded(item)

    def _not_forwarded(self, item: ForwardPost | ForwardChange) -> None:
        """The bus went down before ``item`` left: its sender hears ``unavailable``
        (one passed on from another node is left to its origin's timeout)."""
        if item.origin != self.node_key:
            return
        waiting = self._forwards.get(item.fid)
        if waiting is not None:
            self._untrack(waiting.msg)
            waiting.msg.reply_err(ErrorCode.UNAVAILABLE, _BUS_DOWN)

    @staticmethod
    def _change_envelope(
        room_id: str,
        origin: str,
        fid: int,
        change: Change | RemoteChange,
        skip: tuple[str, int] | None,
    ) -> ForwardChange:
        op = change.op
        return ForwardChange(
            room_id, origin, fid, change.user_id, type(op).__name__, encoder.encode(op), skip
        )

    def taken_back(self, msg: Forwarded) -> None:
        self._untrack(msg)

    def batch_committed(self, room_id: str, messages: list[Message]) -> None:
        if room_id in self._seen:
            self._seen[room_id] = messages[-1].seq
        self._publish_room(room_id, Batch(room_id, messages))

    def event(self, room_id: str, raw: bytes, ev: int, skip: Skip, except_user: str | None) -> None:
        self._publish_room(room_id, Event(room_id, raw, ev, self._skip_key(skip), except_user))

    def to_user(self, room_id: str, user_id: str, raw: bytes, ev: int | None, skip: Skip) -> None:
        self._publish_room(room_id, ToUser(room_id, user_id, raw, ev, self._skip_key(skip)))

    def answer(self, origin: str, fid: int, result: Answer) -> None:
        if origin == self.node_key:  # re-forwarded back to where it started
            self._answered(
                Answered(fid, result.message, result.ev, result.cursors, result.code, result.text)
            )
            return
        envelope = Answered(
            fid, result.message, result.ev, result.cursors, result.code, result.text
        )
        try:
            self.bus.publish(self.cluster.node_channel(origin), encoder.encode(envelope))
        except BusUnavailable:
            # The origin re-forwards after its timeout; the cid rule answers then.
            log.debug("answer %d to %s lost: bus down", fid, origin)

    def _publish_room(self, room_id: str, envelope: Batch | Event | ToUser) -> None:
        try:
            self.bus.publish(self.cluster.room_channel(room_id), encoder.encode(envelope))
        except BusUnavailable:
            self.unpublished += 1
            log.warning("room %s: not published (bus down); other nodes get it by resume", room_id)

    def _skip_key(self, skip: Skip) -> tuple[str, int] | None:
        if isinstance(skip, Session):
            return (self.node_key, skip.info.conn_id)
        if isinstance(skip, tuple):
            return (str(skip[0]), int(skip[1]))
        return None

    # ----- forwarded requests waiting here --------------------------------------

    def _track(self, room: str, msg: Post | PostAs | Change) -> int:
        fid = self._fid_of.get(id(msg))
        now = trio.current_time()
        if fid is not None and fid in self._forwards:
            self._forwards[fid].deadline = now + self.forward_timeout
            return fid
        fid = next(self._fids)
        key = (room, msg.sender_id, msg.cid) if isinstance(msg, Post | PostAs) else None
        self._forwards[fid] = _Forwarded(
            msg, room, key, now + self.forward_timeout, now + self.ask_timeout, now
        )
        self._fid_of[id(msg)] = fid
        if key is not None:
            self._by_post[key] = fid
        return fid

    def _untrack(self, msg: Forwarded) -> _Forwarded | None:
        fid = self._fid_of.pop(id(msg), None)
        if fid is None:
            return None
        waiting = self._forwards.pop(fid, None)
        if waiting is not None and waiting.key is not None:
            if self._by_post.get(waiting.key) == fid:
                del self._by_post[waiting.key]
        return waiting

    def _expire_forwards(self) -> None:
        now = trio.current_time()
        for waiting in list(self._forwards.values()):
            if waiting.deadline > now:
                continue
            if waiting.give_up <= now:
                self._untrack(waiting.msg)
                waiting.msg.reply_err(ErrorCode.UNAVAILABLE, _LOST)
                continue
            waiting.deadline = math.inf  # until the room actor forwards it again
            self._tell(waiting.room, Reforward(waiting.msg))

    def _answered(self, answer: Answered) -> None:
        waiting = self._forwards.get(answer.fid)
        if waiting is None:
            return  # answered already (by the batch), or given up
        self._untrack(waiting.msg)
        msg = waiting.msg
        if answer.code:
            try:
                code = ErrorCode(answer.code)
            except ValueError:
                code = ErrorCode.INTERNAL
            msg.reply_err(code, answer.text)
        elif isinstance(msg, Post | PostAs):
            assert answer.message is not None
            msg.reply_ok(answer.message)
        else:
            msg.reply_ok(answer.ev, cursors=answer.cursors)

    # ----- what arrives on the bus ----------------------------------------------

    def _on_node(self, payload: bytes) -> None:
        try:
            msg = node_decoder.decode(payload)
        except msgspec.ValidationError:
            return  # another module's message on the same channel (calls, AI)
        except msgspec.DecodeError:
            log.warning("node channel: undecodable message dropped")
            return
        match msg:
            case Forwards(items):
                for item in items:
                    self._forwarded(item)
            case ForwardPost() | ForwardChange():
                self._forwarded(msg)
            case Answered():
                self._answered(msg)

    def _forwarded(self, msg: ForwardPost | ForwardChange) -> None:
        match msg:
            case ForwardPost():
                post = RemotePost(
                    self,
                    msg.origin,
                    msg.fid,
                    msg.sender,
                    msg.cid,
                    msg.text,
                    msg.kind,
                    msg.meta,
                    msg.system,
                    msg.reply_to,
                    msg.batch_ack,
                )
                self._tell(msg.room, post)
            case ForwardChange():
                op_type = _OPS.get(msg.op_type)
                if op_type is None:
                    log.warning("node channel: unknown change %r dropped", msg.op_type)
                    return
                op: Any = msgspec.msgpack.decode(msg.op, type=op_type)
                self._tell(
                    msg.room, RemoteChange(self, msg.origin, msg.fid, msg.user, op, msg.skip)
                )

    def _on_room(self, payload: bytes) -> None:
        try:
            msg = room_decoder.decode(payload)
        except msgspec.ValidationError:
            return  # another module's message on the same channel (calls, AI)
        except msgspec.DecodeError:
            log.warning("room channel: undecodable message dropped")
            return
        users = self._local.get(msg.room)
        if not users:
            return
        match msg:
            case Batch():
                self._batch(msg)
            case Event(room, raw, ev, skip, except_user):
                data = self.frame(raw)
                key = room + EV_KEY
                for user in users:
                    if user == except_user:
                        continue
                    for session in self.hub.sessions_of(user):
                        if not self._is_skip(session, skip):
                            session.push_event(key, ev, data)
            case ToUser(room, user, raw, ev, skip):
                if user not in users:
                    return
                data = self.frame(raw)
                for session in self.hub.sessions_of(user):
                    if self._is_skip(session, skip):
                        continue
                    if ev is None:
                        session.push(data)
                    else:
                        session.push_event(room + EV_KEY, ev, data)

    def _is_skip(self, session: Session, skip: tuple[str, int] | None) -> bool:
        return skip is not None and skip[0] == self.node_key and skip[1] == session.info.conn_id

    def _batch(self, batch: Batch) -> None:
        room, messages = batch.room, batch.messages
        held = self._repairing.get(room)
        if held is not None:
            held.append(batch)
            return
        seen = self._seen.get(room)
        if seen is not None:
            if messages[0].seq > seen + 1:
                # Something between was lost on the bus: storage has it.
                self._repairing[room] = [batch]
                self._spawn(self._repair, room, seen)
                return
            messages = [m for m in messages if m.seq > seen]
            if not messages:
                return  # already fanned out here
        users = self._local.get(room)
        if users:
            self._fan_out(room, users, messages)
            self._seen[room] = messages[-1].seq

    async def _repair(self, room: str, seen: int) -> None:
        """Fan out what this node missed of ``room`` after ``seen`` (from
        storage, in order), then the batches that arrived meanwhile."""
        self.repairs += 1
        try:
            rows = await self.store.messages_after(room, seen, self.resume_max)
        except StoreError as exc:
            log.warning("room %s: gap after seq %d not filled (%r)", room, seen, exc)
            rows = []
        held = self._repairing.pop(room, [])
        users = self._local.get(room)
        if users and rows:
            missed = [to_wire(m) for m in rows]
            self._fan_out(room, users, missed)
            self._seen[room] = missed[-1].seq
        elif not rows:
            self._seen.pop(room, None)  # unknown now: take what comes
        for batch in held:
            self._batch(batch)

    def _reconnected(self) -> None:
        """The bus was down: what was published meanwhile is lost for us."""
        for room, seen in list(self._seen.items()):
            if room not in self._repairing:
                self._repairing[room] = []
                self._spawn(self._repair, room, seen)

    @property
    def waiting(self) -> int:
        """Requests sent to other nodes and not answered yet (a drain waits for them)."""
        return len(self._forwards)

    def _fan_out(self, room: str, users: set[str], messages: list[Message]) -> None:
        items: list[_Pending] = []
        for wire in messages:
            item = _Pending(None)
            fid = self._by_post.get((room, wire.sender, wire.cid))
            if fid is not None:
                waiting = self._forwards.get(fid)
                # _by_post names posts only; the isinstance tells mypy so.
                if waiting is not None and isinstance(waiting.msg, Post | PostAs):
                    self._untrack(waiting.msg)
                    item.waiters.append(waiting.msg)
                    item.since = waiting.since
            items.append(item)
        deliver(self.hub, self.frame, room, users, items, messages, written_here=False)

    # ----- which rooms this node listens to -------------------------------------

    def _user_arrived(self, user_id: str) -> None:
        if user_id not in self._loading:
            self._loading[user_id] = trio.Event()
            self._spawn(self._load_user, user_id)

    async def ready(self, user_id: str) -> None:
        """Return once this node listens on every room of ``user_id`` (the
        gateway waits for it before replaying what the session missed)."""
        loading = self._loading.get(user_id)
        if loading is not None:
            await loading.wait()

    async def _load_user(self, user_id: str) -> None:
        done = self._loading[user_id]
        try:
            rooms = await memberships(self.store).rooms_of(user_id)
            if self.hub.is_online(user_id):
                self._rooms_of[user_id] = set()
                for room in rooms:
                    self._listen(room, user_id)
            await self.bus.wait_subscribed()
        except StoreError as exc:
            log.warning(
                "rooms of %s not loaded (%r); they hear their rooms after resume", user_id, exc
            )
        except BusUnavailable:
            # Subscribed locally: the bus subscribes again when back, and the
            # reconnect re-read repairs what was missed meanwhile.
            log.warning("rooms of %s: the bus is down; their subscriptions wait for it", user_id)
        finally:
            done.set()
            if self._loading.get(user_id) is done and not self.hub.is_online(user_id):
                del self._loading[user_id]

    def _user_left(self, user_id: str) -> None:
        loading = self._loading.get(user_id)
        if loading is not None and loading.is_set():
            del self._loading[user_id]
        for room in self._rooms_of.pop(user_id, set()):
            self._unlisten(room, user_id)

    def users_here(self, room: str) -> set[str] | frozenset[str]:
        """The online users of this node who belong to ``room``."""
        return self._local.get(room, _NOBODY)

    def _listen(self, room: str, user_id: str) -> None:
        users = self._local.get(room)
        if users is None:
            users = self._local[room] = set()
            for handler in self.room_handlers:
                self.bus.subscribe(self.cluster.room_channel(room), handler)
            self._spawn(self._note_tip, room)
        users.add(user_id)
        self._rooms_of.setdefault(user_id, set()).add(room)

    async def _note_tip(self, room: str) -> None:
        """Where the room stands as this node starts listening: from here on a
        missing seq is a loss to repair, not history (that is resume's job)."""
        try:
            await self.bus.wait_subscribed()
        except BusUnavailable:
            pass  # noted anyway: the reconnect's repair starts from this tip
        try:
            tip = await self.store.last_seq(room)
        except StoreError:
            return
        if room in self._local and room not in self._seen:
            self._seen[room] = tip

    def _unlisten(self, room: str, user_id: str) -> None:
        users = self._local.get(room)
        if users is None:
            return
        users.discard(user_id)
        if not users:
            del self._local[room]
            self._seen.pop(room, None)
            for handler in self.room_handlers:
                self.bus.unsubscribe(self.cluster.room_channel(room), handler)

    # ----- membership changes ---------------------------------------------------

    def members_changed(self, room_id: str, *, blocks: bool = False) -> None:
        """Somebody joined or left ``room_id`` (or a direct pair (un)blocked):
        every node re-reads it. This node at once; the others over the bus."""
        self._apply_members(Members(room_id, blocks))
        try:
            self.bus.publish(self._members_channel, encoder.encode(Members(room_id, blocks)))
        except BusUnavailable:
            log.warning("room %s: membership change not announced (bus down)", room_id)

    def _on_members(self, payload: bytes) -> None:
        try:
            self._apply_members(members_decoder.decode(payload))
        except msgspec.DecodeError:
            log.warning("members channel: undecodable message dropped")

    def _apply_members(self, notice: Members) -> None:
        if self.system.is_live(ROOM, notice.room):
            self._tell(notice.room, BlocksChanged() if notice.blocks else MembersChanged())
        if not notice.blocks:
            for changed in self.on_members:
                changed(notice.room)
            self._spawn(self._reload_room, notice.room)

    async def _reload_room(self, room: str) -> None:
        online = [u for u in self._rooms_of if self.hub.is_online(u)]
        try:
            members = await memberships(self.store).members_among(room, online)
        except StoreError as exc:
            log.warning("room %s: membership not re-read (%r)", room, exc)
            return
        for user in online:
            if user not in self._rooms_of:
                continue  # left meanwhile
            if user in members:
                self._listen(room, user)
            elif room in self._rooms_of[user]:
                self._rooms_of[user].discard(room)
                self._unlisten(room, user)
