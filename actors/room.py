"""RoomActor: one chat room's sequence, members, recent messages and fan-out.

Rules:
- ``seq`` is gap-free: seqs are assigned only when a batch is handed to the
  writer, at most ONE batch per room is in flight, and a batch commits all or
  nothing. If it fails, ``next_seq`` is re-read from storage before the next
  batch, so a failed write never leaves a hole.
- The sender's ``ok`` goes out only after the writer committed the batch
  (durably stored); members are fanned out at the same moment, in seq order.
  A completion names its ``_Batch`` object and answers exactly that batch's
  posts: never another incarnation's (a restarted actor starts counting
  anew, so an epoch number could repeat; an object cannot).
- A (re)started actor reads ``next_seq`` only once the writer holds nothing
  of this room any more (``MessageWriter.wait_idle``): a batch of the
  incarnation before may still commit, and reading first would give its seq
  to another message (issue 12, item 9). A late completion of such a batch
  still answers its own posts and fans them out.
- Every request gets exactly one answer (``ok`` or ``err``), whatever storage
  does: posts are taken out of ``pending`` only after the lookups that may
  fail; an actor that crashes or stops answers what it holds (``abandon``);
  a completion the actor cannot take any more answers its posts itself.
- Storage failing is expected, not a crash: the request in hand answers
  ``unavailable`` (retryable), state that may now be out of date is marked
  stale and reloaded before it is next used, and the store's
  ``StorageHealth`` logs one line when the outage begins and one when it ends.
  Only a write that worked says storage is back (a SQLite write lock held
  elsewhere still lets reads through).
- A resend of a (sender, cid) already stored, or still in flight, answers with
  the original message; nothing is stored twice. Recent cids are known from
  memory; for the rest the whole pending batch is looked up in one query.
- Fan-out encodes each message once and queues the same bytes to every online
  member session; it never waits on a session.
- Server code posts without a socket through ``PostAs`` (``post_as``): the same
  path, seq, durability and cid idempotence as a client's ``msg.send``.
- Changes to existing messages (edit, delete, reactions) and receipts live in
  ``actors.room_changes``; they use a second per-room sequence ``ev`` (see
  there for why) and are stored before they are acknowledged or fanned out.
  Pins and the disappearing-messages timer too (``actors.room_extras``).
- With a timer on, a message gets ``expires_at`` when its seq is assigned
  (system messages never expire); once committed, the node's expiry sweeper
  hears of it (``RoomDeps.expiring``) in case it is the earliest.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import assert_never

import msgspec
import trio

from actors.errors import ActorError, ActorUnavailable, AskTimeout, Rejected
from actors.once import Once
from actors.room_changes import Change
from actors.room_extras import RoomExtras
from actors.room_link import Reclaim, Reforward, RemoteChange, RemotePost, RoomLink
from actors.room_rules import SERVER_KINDS, encode_meta, preview_of, to_wire
from actors.runtime import Actor, ActorKind, ActorRef, ActorSystem, Ask, Reply
from actors.sessions import MemberSession, SessionHub
from protocol import codec
from protocol.errors import ErrorCode
from protocol.frames import Err, Message, MsgNew, Ok
from protocol.frames_chat import MessageMeta
from realtime_server.base import metrics
from storage.base import Room, Store, StoredMessage, new_time_id, now_ms
from storage.contacts import blocked_either_way
from storage.errors import Conflict, Fenced, StoreError
from storage.fence import ROOM_FENCE
from storage.messages_rich import RichMessageStore, rich_store
from storage.outage import health_of, is_outage
from storage.room_pins import Pin
from storage.sql.writer import MessageWriter

log = logging.getLogger(__name__)

ROOM: ActorKind[RoomMessage] = ActorKind("room")

_UNAVAILABLE = "Storage is unavailable; retry shortly."
_NOT_STORED = "The message was not stored; resend it with the same cid."


@dataclass(frozen=True, slots=True)
class RoomDeps:
    store: Store
    writer: MessageWriter
    hub: SessionHub
    frame: Callable[[bytes], bytes]  # wraps an encoded frame for the wire
    cache_size: int = 500
    resume_max: int = 5000
    # Delete for everyone allowed this long after sending (0: always).
    delete_window_ms: int = 48 * 3600 * 1000
    # Told the expiry time of newly stored disappearing messages (the sweeper).
    expiring: Callable[[int], None] | None = None
    # Told each stored batch, to push it to offline members (issue 15; non-blocking).
    pushed: Callable[[str, set[str], list[Message]], None] | None = None
    # The other nodes (issue 13); None on a single node.
    link: RoomLink | None = None
    # The node's clock (realtime_server.base.clock): message times, the delete window.
    clock: Callable[[], int] = now_ms

    @property
    def rich(self) -> RichMessageStore:
        return rich_store(self.store)


# ----- messages --------------------------------------------------------------


class Post(msgspec.Struct, frozen=True, eq=False):
    """Cast from the gateway: store and fan out a text message, reply to ``session``.

    A frozen msgspec Struct rather than a dataclass: this is made for every
    ``msg.send``, and a frozen dataclass's ``__init__`` costs several times more.
    """

    session: MemberSession
    request_id: int
    sender_id: str
    cid: str
    text: str
    kind: str = "text"
    meta: MessageMeta | None = None
    reply_to: int | None = None  # seq in this room; the actor adds its preview
    # Exactly one answer, whichever path gets there first.
    once: Once = msgspec.field(default_factory=Once)

    def claim(self) -> bool:
        """True the first time: the caller is the one to answer."""
        return self.once.claim()

    def reply_ok(self, message: Message) -> None:
        if self.claim():
            self.session.push_frame(Ok(re=self.request_id, d=message))

    def reply_err(self, code: ErrorCode, msg: str) -> None:
        if self.claim():
            self.session.push_frame(Err(code=code.value, msg=msg, re=self.request_id))

    def fail(self, error: ActorError) -> None:
        # The room crashed, stopped or does not exist: the sender must hear.
        self.reply_err(error.code, error.message)


class PostAs(msgspec.Struct, frozen=True, eq=False):
    """Cast carrying its own reply slot: post without a socket session.

    Used through ``post_as`` by server code (missed-call notices, group
    system messages, AI answers). ``system=True`` lets a sender that is not a
    member (e.g. "system", "ai:gpt") post; otherwise membership is checked
    like for ``msg.send``. A repeated (sender_id, cid) answers the original.
    """

    sender_id: str
    cid: str
    text: str
    kind: str = "text"
    meta: MessageMeta | None = None
    system: bool = False
    reply_to: int | None = None
    reply: Reply[Message] = msgspec.field(default_factory=Reply)
    session: None = None  # never a socket: acks go to ``reply``
    request_id: int = 0

    def claim(self) -> bool:
        return not self.reply.done

    def reply_ok(self, message: Message) -> None:
        self.reply.set(message)

    def reply_err(self, code: ErrorCode, msg: str) -> None:
        self.reply.fail(Rejected(msg, code=code))

    def fail(self, error: ActorError) -> None:
        self.reply.fail(error)


async def post_as(
    system: ActorSystem,
    room_id: str,
    sender_id: str,
    cid: str,
    text: str,
    *,
    kind: str = "text",
    meta: MessageMeta | None = None,
    system_sender: bool = False,
    timeout: float | None = None,  # noqa: ASYNC109 - ask-style contract, like ActorRef.ask
) -> Message:
    """Store ``text`` in ``room_id`` as ``sender_id`` and return the stored message.

    Returns once durably stored and fanned out (or the original message for a
    repeated cid). Raises ``Rejected`` (``code``: not_member, invalid,
    unavailable...) or another ``ActorError``; ``AskTimeout`` after
    ``timeout`` (default: the system's ask timeout).
    """
    if kind not in SERVER_KINDS:
        raise Rejected(f"Unknown message kind {kind!r}.", code=ErrorCode.INVALID)
    msg = PostAs(sender_id, cid, text, kind, meta, system_sender)
    limit = system.ask_timeout if timeout is None else timeout
    with trio.move_on_after(limit):
        await system.ref(ROOM, room_id).tell(msg)
        return await msg.reply.wait()
    raise AskTimeout(f"room:{room_id} did not store the message within {limit:g}s")


@dataclass(frozen=True, slots=True)
class Replay(Ask["ReplayResult"]):
    """Call: what ``user_id`` missed after ``after_seq`` (and, if given, ``after_ev``)."""

    user_id: str
    after_seq: int
    after_ev: int | None = None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    messages: list[Message]
    last_seq: int
    # True when more than resume_max were missed: the client must reload.
    truncated: bool = False
    # Change events after ``after_ev``, as encoded push frames, in ev order.
    events: list[bytes] = field(default_factory=list)
    last_ev: int = 0
    events_truncated: bool = False


@dataclass(frozen=True, slots=True)
class GetMessage(Ask[Message | None]):
    """Call: message ``seq`` as ``user_id`` (a member) sees it; None if absent."""

    user_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class GetPins(Ask["PinsView"]):
    """Call: the room's pins and timer as ``user_id`` (a member) sees them."""

    user_id: str


@dataclass(frozen=True, slots=True)
class PinsView:
    pins: list[tuple[Pin, Message]]  # oldest first
    disappear_ms: int
    last_ev: int


@dataclass(frozen=True, slots=True, eq=False)
class Committed:
    """Cast from the writer's completion callback: how ``batch`` went."""

    batch: _Batch
    error: BaseException | None

    def fail(self, error: ActorError) -> None:
        # The actor is gone (crashed, stopped, shut down) before it could take
        # this: the batch answers its own posts, so none is left waiting.
        self.batch.settle(self.error)


@dataclass(frozen=True, slots=True)
class IsMember(Ask[bool]):
    user_id: str


@dataclass(frozen=True, slots=True)
class MembersChanged:
    """Cast after a group change: reload members, so a removed one stops receiving now."""


@dataclass(frozen=True, slots=True)
class BlocksChanged:
    """Cast after a block or unblock between a direct room's pair (issue 8): reload
    whether they may message each other. Kept in memory so posting costs no query."""


RoomCall = Replay | GetMessage | GetPins | IsMember
"""What a room answers (``ask``)."""

RoomCast = (
    Post
    | PostAs
    | RemotePost
    | Change
    | RemoteChange
    | Committed
    | MembersChanged
    | BlocksChanged
    | Reclaim
    | Reforward
)
"""What a room takes without answering (``tell``); requests among them answer
through their own reply path (a session, a ``Reply``, the origin node)."""

RoomMessage = RoomCall | RoomCast
"""Everything a room actor takes: ``ActorRef[RoomMessage]``."""

AnyPost = Post | PostAs | RemotePost


@dataclass(slots=True)
class _Pending:
    message: StoredMessage | None
    waiters: list[AnyPost] = field(default_factory=list)
    since: float = field(default_factory=metrics.now)  # for the ack-latency histogram
    # The meta to store when the actor added to the sender's (a reply's
    # preview); the post itself is never changed.
    meta: MessageMeta | None = None


@dataclass(slots=True, eq=False)
class _Batch:
    """One batch handed to the writer; its completion answers exactly these posts."""

    room: str
    deps: RoomDeps
    members: set[str]  # who hears it; the actor replaces, never mutates, its set
    items: dict[tuple[str, str], _Pending]
    _wires: list[Message] | None = None

    def settle(self, error: BaseException | None) -> list[Message]:
        """Answer every post of the batch (and fan it out if stored); the wire messages."""
        items = list(self.items.values())
        if error is None:
            wires = self.wires()
            if self.deps.link is not None:
                # Published first: the other nodes' fan-out overlaps this one's.
                self.deps.link.batch_committed(self.room, wires)
            deliver(self.deps.hub, self.deps.frame, self.room, self.members, items, wires)
            if self.deps.pushed is not None:
                self.deps.pushed(self.room, self.members, wires)
            expiring = [w.expires_at for w in wires if w.expires_at is not None]
            if expiring and self.deps.expiring is not None:
                self.deps.expiring(min(expiring))
            return wires
        for item in items:
            for post in item.waiters:
                post.reply_err(
                    ErrorCode.UNAVAILABLE,
                    "The message was not stored; resend it with the same cid.",
                )
        return []

    def wires(self) -> list[Message]:
        """The batch's messages as clients see them (made once)."""
        if self._wires is None:
            self._wires = [to_wire(item.message) for item in self.items.values() if item.message]
        return self._wires


def deliver(
    hub: SessionHub,
    frame: Callable[[bytes], bytes],
    room: str,
    members: set[str],
    items: list[_Pending],
    wires: list[Message],
    *,
    written_here: bool = True,
) -> None:
    """Ack the senders and send the batch to every online member session.

    ``written_here``: False for a batch another node's room leader wrote and
    published; it is delivered the same way but not counted as this node's
    room traffic (admin statistics sum the nodes' traffic).

    The batch is framed once and concatenated once. Every session gets ONE
    write for the whole batch: the shared blob when it sent nothing of it,
    otherwise the others' frames and its own acks joined (a sender never
    receives its own message as ``msg.new``: its ack carries it). A write is
    a syscall, which is what a busy room spends most of its time on. Only
    sessions still replaying take frames one by one (held back and
    deduplicated by ``Session.push_event``).

    The same function fans out on the other nodes what the room's leader
    published (issue 13): there ``items`` hold the posts this node forwarded,
    if any, so their senders are acked in seq order with the rest; a
    forwarded post whose origin does that (``batch_ack``) is only marked
    answered here.
    """
    blobs: list[bytes] = []
    # Keyed by the first waiter's session: None for a post without a socket
    # (never a hub session, so it matches none below).
    origins: dict[MemberSession | None, set[int]] = {}
    for i, (item, wire) in enumerate(zip(items, wires, strict=True)):
        blobs.append(frame(codec.encode(MsgNew(d=wire))))
        if item.waiters:
            origins.setdefault(item.waiters[0].session, set()).add(i)
    acks: dict[MemberSession, list[bytes]] = {}
    for item, wire in zip(items, wires, strict=True):
        for post in item.waiters:
            if post.session is None:
                if isinstance(post, RemotePost) and post.batch_ack:
                    post.claim()  # its origin acks it from the published batch
                else:
                    post.reply_ok(wire)
            elif post.claim():
                acks.setdefault(post.session, []).append(
                    frame(codec.encode(Ok(re=post.request_id, d=wire)))
                )
    everything = blobs[0] if len(blobs) == 1 else b"".join(blobs)
    for user_id in members:
        for session in hub.sessions_of(user_id):
            own = origins.get(session)
            mine = acks.pop(session, None)
            if session.syncing:
                for i, data in enumerate(blobs):
                    if own is None or i not in own:
                        session.push_event(room, wires[i].seq, data)
                if mine:
                    session.push(b"".join(mine))
            elif own is None and not mine:
                session.push(everything)
            else:
                parts = blobs if own is None else [b for i, b in enumerate(blobs) if i not in own]
                data = b"".join(parts + mine) if mine else b"".join(parts)
                if data:
                    session.push(data)
    # Senders no longer in the member set (removed meanwhile) still hear
    # about what they sent.
    for session, parts in acks.items():
        session.push(b"".join(parts))
    metrics.fanned_out(hub, room, members, items, origins, traffic=written_here)


class RoomActor(RoomExtras, Actor[RoomMessage]):
    def __init__(self, key: str, ref: ActorRef[RoomMessage], deps: RoomDeps) -> None:
        super().__init__(key, ref)
        self.deps = deps
        self.health = health_of(deps.store)
        self.members: set[str] = set()
        self.roles: dict[str, str] = {}
        self.kind = "group"
        self.pins: list[Pin] = []
        self.disappear_ms = 0
        self.cursors: dict[str, tuple[int, int]] = {}  # user -> (read, delivered)
        self.last_ev = 0
        self.last_seq = 0  # highest committed seq
        self.cache: deque[Message] = deque(maxlen=deps.cache_size)
        self.by_cid: OrderedDict[tuple[str, str], Message] = OrderedDict()
        self.pending: dict[tuple[str, str], _Pending] = {}
        self.batch: _Batch | None = None  # the one batch in the writer
        self.blocked = False  # a direct room whose pair blocked each other (either way)
        # Several nodes (issue 13): the node holding the room's lease, and our
        # token when it is us. None on a single node: this actor always leads.
        self.leader: str | None = None
        self.token = 0
        # After a storage failure memory may be behind storage: reload before use.
        # The tail (last_seq, cache) only while no batch is in flight.
        self.stale_room = False  # members, roles, blocks, ev, cursors
        self.stale_tail = False

    # ----- lifecycle -----------------------------------------------------------

    async def on_start(self) -> None:
        # A crashed incarnation ran in this same task: its lease is not ours yet.
        ROOM_FENCE.set(None)
        # A batch of the incarnation before may still be in the writer; its
        # seqs are only known once it is done (committed or not).
        await self.deps.writer.wait_idle(self.key)
        await self._load_room()
        if self.deps.link is not None:
            await self._claim(self.deps.link)
        if self.leads:
            await self._load_tail()

    @property
    def leads(self) -> bool:
        """True where this actor assigns the room's seq and ev (always on one node)."""
        return self.deps.link is None or self.leader == self.deps.link.node_key

    async def _claim(self, link: RoomLink) -> None:
        """Lead the room if nobody alive does; follow whoever does otherwise.

        The tail is read only AFTER the lease is ours: a batch the previous
        leader committed before losing it is then already in storage."""
        ROOM_FENCE.set(None)  # the claim itself is not a write of the room
        was_leading = self.leads and self.leader is not None
        holder = await link.claim(self.key)
        self.leader = holder.node_key
        if self.leads:
            self.token = holder.token
            # Every write this task makes for the room checks the lease.
            ROOM_FENCE.set((self.key, holder.token))
            if not was_leading:
                self.stale_tail = True  # another node may have written meanwhile
                self.stale_room = True
        else:
            self.token = 0

    async def _load_room(self) -> None:
        room = await self.deps.store.get_room(self.key)
        if room is None:
            raise ActorUnavailable(
                "You are not a member of this room (or it does not exist).",
                code=ErrorCode.NOT_MEMBER,
            )
        self.kind = room.kind
        self.members = {m.user_id for m in room.members}
        self.roles = {m.user_id: m.role for m in room.members}
        await self._load_blocks(room)
        await self._load_changes()

    async def _load_blocks(self, room: Room | None) -> None:
        pair = [m.user_id for m in room.members] if room is not None else []
        if room is None or room.kind != "direct" or len(pair) != 2:
            self.blocked = False
            return
        self.blocked = await blocked_either_way(self.deps.store, pair[0], pair[1])

    async def _load_tail(self) -> None:
        store = self.deps.store
        last_seq = await store.last_seq(self.key)
        recent = await store.messages_before(self.key, last_seq + 1, self.deps.cache_size)
        self.last_seq = last_seq
        self.cache.clear()
        self.by_cid.clear()
        for m in recent:
            self._remember(to_wire(m))

    async def _refresh(self) -> None:
        """Reload what a storage failure left in doubt; raises ``StoreError`` if still down."""
        if self.stale_room:
            await self._load_room()
            self.stale_room = False
        if self.stale_tail and self.batch is None and self.leads:
            await self._load_tail()
            self.stale_tail = False

    def _storage_failed(self, exc: StoreError) -> None:
        log.debug("room %s: storage failed: %r", self.key, exc)
        self.health.failed(exc)

    def may_stop_idle(self) -> bool:
        return self.batch is None and not self.pending

    def abandon(self, error: ActorError) -> None:
        # Posts not yet handed to the writer: nothing was stored, a resend is
        # safe. The batch in the writer answers its own posts when it is done.
        pending, self.pending = self.pending, {}
        for item in pending.values():
            for post in item.waiters:
                post.fail(error)

    def _remember(self, message: Message) -> None:
        self.cache.append(message)
        self.by_cid[(message.sender, message.cid)] = message
        # Keep the cid index a few times the cache: resends come soon after.
        while len(self.by_cid) > 4 * self.deps.cache_size:
            self.by_cid.popitem(last=False)

    # ----- handlers ------------------------------------------------------------

    async def handle_call(self, msg: RoomMessage) -> object:
        try:
            await self._refresh()
            return await self._answer(msg)
        except StoreError as exc:
            # Reads only: nothing in memory became doubtful.
            self._storage_failed(exc)
            raise Rejected(_UNAVAILABLE, code=ErrorCode.UNAVAILABLE) from exc

    async def _answer(self, msg: RoomMessage) -> object:
        if not self.leads:
            # A follower answers reads from the shared database: what the
            # leader committed is there, and its tail is not in this memory.
            await self._follow_storage()
        match msg:
            case Replay(user_id, after_seq, after_ev):
                self._check_member(user_id)
                result = await self._replay(after_seq)
                if after_ev is None:
                    return msg.answer(replace(result, last_ev=self.last_ev))
                return msg.answer(await self._replay_events(result, after_ev))
            case GetMessage(user_id, seq):
                self._check_member(user_id)
                return msg.answer(await self._find(seq))
            case GetPins(user_id):
                self._check_member(user_id)
                pins = []
                for pin in self.pins:
                    m = await self._find(pin.seq)
                    if m is not None:
                        pins.append((pin, m))
                return msg.answer(PinsView(pins, self.disappear_ms, self.last_ev))
            case IsMember(user_id):
                return msg.answer(user_id in self.members)
            case _:
                raise ActorError(f"room cannot answer {type(msg).__name__}")

    async def _follow_storage(self) -> None:
        self.last_seq = await self.deps.store.last_seq(self.key)
        self.cache.clear()
        self.by_cid.clear()
        await self._load_changes()

    async def handle_cast(self, msg: RoomMessage) -> None:
        if isinstance(msg, Reclaim):
            assert self.deps.link is not None
            if self.batch is None:  # else the batch's fence decides, and we claim then
                try:
                    await self._claim(self.deps.link)
                except StoreError as exc:
                    self._storage_failed(exc)
                    self.stale_room = True
            return
        if isinstance(msg, Reforward):
            link = self.deps.link
            assert link is not None
            try:
                await self._claim(link)
            except StoreError as exc:
                self._storage_failed(exc)
                link.taken_back(msg.msg)
                msg.msg.reply_err(ErrorCode.UNAVAILABLE, _NOT_STORED)
                return
            if self.leads:
                link.taken_back(msg.msg)  # answered here now, not by the old leader
            await self._take(msg.msg)
            return
        await self._take(msg)

    async def _take(self, msg: RoomMessage) -> None:
        match msg:
            case Post() | PostAs() | RemotePost():
                if not self.leads:
                    self._forward(msg)
                    return
                await self._post(msg)
            case Change() | RemoteChange():
                if not self.leads:
                    self._forward(msg)
                    return
                await self._change(msg)
            case Committed(batch, error):
                await self._committed(batch, error)
            case MembersChanged() | BlocksChanged():
                # Reloaded now; if storage fails, before the room is next used.
                self.stale_room = True
                try:
                    await self._refresh()
                except StoreError as exc:
                    self._storage_failed(exc)
            case Reclaim() | Reforward():  # handle_cast took them; a Reforward is not nested
                raise ActorError(f"room cannot take a nested {type(msg).__name__}")
            case Replay() | GetMessage() | GetPins() | IsMember():
                raise ActorError(f"room answers {type(msg).__name__} only through ask")
            case _:
                assert_never(msg)

    def _check_member(self, user_id: str) -> None:
        if user_id not in self.members:
            raise Rejected(
                "You are not a member of this room (or it does not exist).",
                code=ErrorCode.NOT_MEMBER,
            )

    # ----- posting -------------------------------------------------------------

    def _forward(self, msg: AnyPost | Change | RemoteChange) -> None:
        link, leader = self.deps.link, self.leader
        assert link is not None and leader is not None
        try:
            link.forward(leader, self.key, msg)
        except ActorError as exc:
            msg.reply_err(exc.code, exc.message)

    async def _post(self, post: AnyPost) -> None:
        try:
            await self._refresh()
        except StoreError as exc:
            self._storage_failed(exc)
            post.reply_err(ErrorCode.UNAVAILABLE, _NOT_STORED)
            return
        system = isinstance(post, PostAs | RemotePost) and post.system
        if post.sender_id not in self.members and not system:
            post.reply_err(
                ErrorCode.NOT_MEMBER, "You are not a member of this room (or it does not exist)."
            )
            return
        if self.blocked and not system:
            post.reply_err(ErrorCode.FORBIDDEN, "One of you blocked the other: no messages.")
            return
        key = (post.sender_id, post.cid)
        known = self.by_cid.get(key)
        if known is not None:
            post.reply_ok(known)
            return
        waiting = self.pending.get(key) or (self.batch.items if self.batch else {}).get(key)
        if waiting is not None:
            waiting.waiters.append(post)
            return
        if post.reply_to is not None:
            try:
                original = await self._find(post.reply_to)
            except StoreError as exc:
                self._storage_failed(exc)
                post.reply_err(ErrorCode.UNAVAILABLE, _NOT_STORED)
                return
            if original is None:
                post.reply_err(ErrorCode.NOT_FOUND, "The message replied to is not in this room.")
                return
            # A new meta: the sender's (the client's decoded frame) stays as sent.
            reply = preview_of(original)
            meta = (
                MessageMeta(reply=reply)
                if post.meta is None
                else msgspec.structs.replace(post.meta, reply=reply)
            )
            self.pending[key] = _Pending(None, [post], meta=meta)
        else:
            self.pending[key] = _Pending(None, [post])
        if self.batch is None:
            await self._flush()

    async def _flush(self, *, look_up_cids: bool = False) -> None:
        """Hand everything pending to the writer as one batch with fresh seqs.

        The memory index answers resends of recent messages. A cid it does not
        know is almost always new, so no query asks storage first: the unique
        (room, sender, cid) constraint refuses the rare resend of an older
        message, and ``_committed`` then comes back here with
        ``look_up_cids=True`` to answer it with the stored original.
        """
        if not self.pending:
            return
        stored: dict[tuple[str, str], StoredMessage] = {}
        try:
            await self._refresh()
            if look_up_cids:
                stored = await self.deps.store.find_by_cids(self.key, list(self.pending))
        except StoreError as exc:
            # Nothing was handed over: every post hears, and may resend.
            self._storage_failed(exc)
            pending, self.pending = self.pending, {}
            for item in pending.values():
                for post in item.waiters:
                    post.reply_err(ErrorCode.UNAVAILABLE, _NOT_STORED)
            return
        pending, self.pending = self.pending, {}
        rows: list[StoredMessage] = []
        items: dict[tuple[str, str], _Pending] = {}
        ts = self.deps.clock()
        ttl = self.disappear_ms
        for key, item in pending.items():
            original = stored.get(key)
            if original is not None:
                wire = to_wire(original)
                for post in item.waiters:
                    post.reply_ok(wire)
                continue
            first = item.waiters[0]
            seq = self.last_seq + len(rows) + 1
            item.message = StoredMessage(
                id=new_time_id("m_"),
                room_id=self.key,
                seq=seq,
                sender_id=first.sender_id,
                cid=first.cid,
                text=first.text,
                created_at=ts,
                kind=first.kind,
                meta=encode_meta(first.meta if item.meta is None else item.meta),
                reply_to=first.reply_to,
                expires_at=ts + ttl if ttl and first.kind != "system" else None,
            )
            rows.append(item.message)
            items[key] = item
        if not rows:
            return
        batch = self.batch = _Batch(self.key, self.deps, self.members, items)
        ref = self.ref

        def done(error: BaseException | None) -> None:
            # Runs in the writer's task: hand over, never block.
            committed = Committed(batch, error)
            try:
                # One batch in the writer at a time: never refused as overload,
                # or the room would wait for it forever.
                ref.tell_soon(committed, completion=True)
            except ActorError as gone:  # the actor system is stopping
                committed.fail(gone)

        fence = (self.key, self.token) if self.deps.link is not None else None
        self.deps.writer.submit_nowait(rows, done, fence)

    async def _committed(self, batch: _Batch, error: BaseException | None) -> None:
        if batch is not self.batch:
            # A batch of an incarnation before this one. on_start waited for it
            # to finish before loading the tail, so memory already holds its
            # rows if it committed: only its posts and the members must hear.
            batch.settle(error)
            return
        self.batch = None
        if isinstance(error, Fenced):
            await self._lost_lease(batch)
            return
        if isinstance(error, Conflict) and error.field == "cid":
            # Nothing of the batch was stored (all or nothing): take its posts
            # back, ahead of what queued meanwhile, and let storage say which
            # cids it already holds.
            self.pending = {**batch.items, **self.pending}
            await self._flush(look_up_cids=True)
            return
        if error is None:
            wires = batch.wires()
            for wire in wires:
                self._remember(wire)
            self.last_seq = wires[-1].seq
            # The next batch goes to the writer first, its commit (a thread, an
            # fsync) overlapping this batch's fan-out: a room's pace is then the
            # slower of the two, not their sum. At 100 messages/s on busy cores
            # their sum passed the 10 ms between messages, messages queued, and
            # the queue was the tail (README, "The tail at steady load").
            # Fan-out order is unchanged: this actor runs the next batch's
            # fan-out only after this one's.
            if self.pending:
                await self._flush()
            batch.settle(None)
            return
        else:
            if isinstance(error, StoreError):
                self._storage_failed(error)
            if not is_outage(error):
                log.warning("room %s: batch of %d failed: %r", self.key, len(batch.items), error)
            batch.settle(error)
            # The write may have half-happened from our point of view (e.g. a
            # commit whose answer was lost): trust storage, not memory.
            self.stale_tail = True
        if self.pending:
            await self._flush()

    async def _lost_lease(self, batch: _Batch) -> None:
        """Another node took the room (we were paused or cut off past our
        lease): nothing of the batch was stored. Step down and hand the posts
        to the new leader; their senders never learn, and a resend with the
        same cid stays safe either way."""
        log.error(
            "room %s: lease lost to another node (token %d); stepping down", self.key, self.token
        )
        link = self.deps.link
        assert link is not None
        posts = [post for item in batch.items.values() for post in item.waiters]
        posts += [post for item in self.pending.values() for post in item.waiters]
        self.pending = {}
        try:
            await self._claim(link)
        except StoreError as exc:
            self._storage_failed(exc)
            for post in posts:
                post.reply_err(ErrorCode.UNAVAILABLE, _NOT_STORED)
            return
        self.stale_tail = self.stale_room = True
        for post in posts:
            if self.leads:  # the lease came back to us meanwhile
                await self._post(post)
            else:
                self._forward(post)

    # ----- resume --------------------------------------------------------------

    async def _replay(self, after_seq: int) -> ReplayResult:
        last = self.last_seq
        if after_seq >= last:
            return ReplayResult([], last)
        missed = last - after_seq
        if missed > self.deps.resume_max:
            return ReplayResult([], last, truncated=True)
        if self.cache and self.cache[0].seq <= after_seq + 1:
            start = after_seq + 1 - self.cache[0].seq
            return ReplayResult(list(self.cache)[start:], last)
        rows = await self.deps.store.messages_after(self.key, after_seq, missed)
        return ReplayResult([to_wire(m) for m in rows if m.seq <= last], last)
