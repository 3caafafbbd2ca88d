"""RoomActor: one chat room's sequence, members, recent messages and fan-out.

Rules:
- ``seq`` is gap-free: seqs are assigned only when a batch is handed to the
  writer, at most ONE batch per room is in flight, and a batch commits all or
  nothing. If it fails, ``next_seq`` is re-read from storage before the next
  batch, so a failed write never leaves a hole.
- The sender's ``ok`` goes out only after the writer committed the batch
  (durably stored); members are fanned out at the same moment, in seq order.
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
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from actors.errors import ActorError, ActorUnavailable, AskTimeout, Rejected
from actors.room_changes import Change, RoomChanges
from actors.room_rules import SERVER_KINDS, encode_meta, preview_of, to_wire
from actors.runtime import Actor, ActorRef, ActorSystem, Reply
from protocol import codec
from protocol.errors import ErrorCode
from protocol.frames import Err, Message, MsgNew, Ok
from protocol.frames_chat import MessageMeta
from realtime_server import metrics
from storage.base import Room, Store, StoredMessage, new_time_id, now_ms
from storage.contacts import blocked_either_way
from storage.messages_rich import RichMessageStore, rich_store
from storage.writer import MessageWriter

log = logging.getLogger(__name__)

ROOM = "room"


@dataclass(frozen=True, slots=True)
class RoomDeps:
    store: Store
    writer: MessageWriter
    hub: Any  # realtime_server.hub.Hub; typed loosely so actors/ imports no gateway code
    frame: Callable[[bytes], bytes]  # wraps an encoded frame for the wire
    cache_size: int = 500
    resume_max: int = 5000
    # Delete for everyone allowed this long after sending (0: always).
    delete_window_ms: int = 48 * 3600 * 1000

    @property
    def rich(self) -> RichMessageStore:
        return rich_store(self.store)


# ----- messages --------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Post:
    """Cast from the gateway: store and fan out a text message, reply to ``session``."""

    session: Any  # realtime_server.session.Session
    request_id: int
    sender_id: str
    cid: str
    text: str
    kind: str = "text"
    meta: MessageMeta | None = None
    reply_to: int | None = None  # seq in this room; the actor adds its preview

    def reply_ok(self, message: Message) -> None:
        self.session.push_frame(Ok(re=self.request_id, d=message))

    def reply_err(self, code: ErrorCode, msg: str) -> None:
        self.session.push_frame(Err(code=code.value, msg=msg, re=self.request_id))

    def fail(self, error: ActorError) -> None:
        # The room crashed, stopped or does not exist: the sender must hear.
        self.reply_err(error.code, error.message)


@dataclass(slots=True, eq=False)
class PostAs:
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
    reply: Reply[Message] = field(default_factory=Reply)
    session: None = None  # never a socket: acks go to ``reply``
    request_id: int = 0

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
class Replay:
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
class GetMessage:
    """Call: message ``seq`` as ``user_id`` (a member) sees it; None if absent."""

    user_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Committed:
    """Cast from the writer's completion callback."""

    epoch: int
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class IsMember:
    user_id: str


@dataclass(frozen=True, slots=True)
class MembersChanged:
    """Cast after a group change: reload members, so a removed one stops receiving now."""


@dataclass(frozen=True, slots=True)
class BlocksChanged:
    """Cast after a block or unblock between a direct room's pair (issue 8): reload
    whether they may message each other. Kept in memory so posting costs no query."""


@dataclass(slots=True)
class _Pending:
    message: StoredMessage | None
    waiters: list[Post | PostAs] = field(default_factory=list)
    since: float = field(default_factory=metrics.now)  # for the ack-latency histogram


class RoomActor(RoomChanges, Actor):
    def __init__(self, key: str, ref: ActorRef, deps: RoomDeps) -> None:
        super().__init__(key, ref)
        self.deps = deps
        self.members: set[str] = set()
        self.roles: dict[str, str] = {}
        self.cursors: dict[str, tuple[int, int]] = {}  # user -> (read, delivered)
        self.last_ev = 0
        self.last_seq = 0  # highest committed seq
        self.cache: deque[Message] = deque(maxlen=deps.cache_size)
        self.by_cid: OrderedDict[tuple[str, str], Message] = OrderedDict()
        self.pending: dict[tuple[str, str], _Pending] = {}
        self.inflight: dict[tuple[str, str], _Pending] | None = None
        self.epoch = 0
        self.blocked = False  # a direct room whose pair blocked each other (either way)

    # ----- lifecycle -----------------------------------------------------------

    async def on_start(self) -> None:
        store = self.deps.store
        room = await store.get_room(self.key)
        if room is None:
            raise ActorUnavailable(
                "You are not a member of this room (or it does not exist).",
                code=ErrorCode.NOT_MEMBER,
            )
        self.members = {m.user_id for m in room.members}
        self.roles = {m.user_id: m.role for m in room.members}
        await self._load_blocks(room)
        await self._load_tail()
        await self._load_changes()

    async def _load_blocks(self, room: Room | None) -> None:
        pair = [m.user_id for m in room.members] if room is not None else []
        if room is None or room.kind != "direct" or len(pair) != 2:
            self.blocked = False
            return
        self.blocked = await blocked_either_way(self.deps.store, pair[0], pair[1])

    async def _load_tail(self) -> None:
        store = self.deps.store
        self.last_seq = await store.last_seq(self.key)
        recent = await store.messages_before(self.key, self.last_seq + 1, self.deps.cache_size)
        self.cache.clear()
        self.by_cid.clear()
        for m in recent:
            self._remember(to_wire(m))

    def may_stop_idle(self) -> bool:
        return self.inflight is None and not self.pending

    def _remember(self, message: Message) -> None:
        self.cache.append(message)
        self.by_cid[(message.sender, message.cid)] = message
        # Keep the cid index a few times the cache: resends come soon after.
        while len(self.by_cid) > 4 * self.deps.cache_size:
            self.by_cid.popitem(last=False)

    # ----- handlers ------------------------------------------------------------

    async def handle_call(self, msg: Any) -> Any:
        match msg:
            case Replay(user_id, after_seq, after_ev):
                self._check_member(user_id)
                result = await self._replay(after_seq)
                if after_ev is None:
                    return replace(result, last_ev=self.last_ev)
                return await self._replay_events(result, after_ev)
            case GetMessage(user_id, seq):
                self._check_member(user_id)
                return await self._find(seq)
            case IsMember(user_id):
                return user_id in self.members
            case _:
                raise ActorError(f"room cannot answer {type(msg).__name__}")

    async def handle_cast(self, msg: Any) -> None:
        match msg:
            case Post() | PostAs():
                await self._post(msg)
            case Change():
                await self._change(msg)
            case Committed(epoch, error):
                if epoch == self.epoch:
                    await self._committed(error)
            case MembersChanged():
                room = await self.deps.store.get_room(self.key)
                self.members = {m.user_id for m in room.members} if room is not None else set()
            case BlocksChanged():
                await self._load_blocks(await self.deps.store.get_room(self.key))
            case _:
                raise ActorError(f"room cannot take {type(msg).__name__}")

    def _check_member(self, user_id: str) -> None:
        if user_id not in self.members:
            raise Rejected(
                "You are not a member of this room (or it does not exist).",
                code=ErrorCode.NOT_MEMBER,
            )

    # ----- posting -------------------------------------------------------------

    async def _post(self, post: Post | PostAs) -> None:
        system = isinstance(post, PostAs) and post.system
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
        waiting = self.pending.get(key) or (self.inflight or {}).get(key)
        if waiting is not None:
            waiting.waiters.append(post)
            return
        if post.reply_to is not None:
            original = await self._find(post.reply_to)
            if original is None:
                post.reply_err(ErrorCode.NOT_FOUND, "The message replied to is not in this room.")
                return
            meta = post.meta or MessageMeta()
            meta.reply = preview_of(original)
            post.meta = meta
        self.pending[key] = _Pending(None, [post])
        if self.inflight is None:
            await self._flush()

    async def _flush(self) -> None:
        """Hand everything pending to the writer as one batch with fresh seqs."""
        pending, self.pending = self.pending, {}
        if not pending:
            return
        # One query covers every cid the memory index does not know (resends
        # after a restart, or of messages older than the index).
        stored = await self.deps.store.find_by_cids(self.key, list(pending))
        batch: list[StoredMessage] = []
        inflight: dict[tuple[str, str], _Pending] = {}
        ts = now_ms()
        for key, item in pending.items():
            original = stored.get(key)
            if original is not None:
                wire = to_wire(original)
                for post in item.waiters:
                    post.reply_ok(wire)
                continue
            first = item.waiters[0]
            seq = self.last_seq + len(batch) + 1
            item.message = StoredMessage(
                id=new_time_id("m_"),
                room_id=self.key,
                seq=seq,
                sender_id=first.sender_id,
                cid=first.cid,
                text=first.text,
                created_at=ts,
                kind=first.kind,
                meta=encode_meta(first.meta),
                reply_to=first.reply_to,
            )
            batch.append(item.message)
            inflight[key] = item
        if not batch:
            return
        self.inflight = inflight
        self.epoch += 1
        epoch, ref = self.epoch, self.ref
        self.deps.writer.submit_nowait(batch, lambda exc: ref.tell_soon(Committed(epoch, exc)))

    async def _committed(self, error: BaseException | None) -> None:
        inflight, self.inflight = self.inflight or {}, None
        if error is None:
            self._fan_out(list(inflight.values()))
        else:
            log.warning("room %s: batch of %d failed: %r", self.key, len(inflight), error)
            for item in inflight.values():
                for post in item.waiters:
                    post.reply_err(
                        ErrorCode.UNAVAILABLE,
                        "The message was not stored; resend it with the same cid.",
                    )
            # The write may have half-happened from our point of view (e.g. a
            # commit whose answer was lost): trust storage, not memory.
            await self._load_tail()
        if self.pending:
            await self._flush()

    def _fan_out(self, items: list[_Pending]) -> None:
        """Ack the senders and send the batch to every online member session.

        The batch is framed once and concatenated once; each session gets that
        one blob in one push (one write). Only a sender's own sessions and
        sessions still replaying need a per-frame path.
        """
        frame = self.deps.frame
        wires: list[Message] = []
        blobs: list[bytes] = []
        origins: dict[Any, set[int]] = {}
        for i, item in enumerate(items):
            assert item.message is not None
            wire = to_wire(item.message)
            self._remember(wire)
            wires.append(wire)
            blobs.append(frame(codec.encode(MsgNew(d=wire))))
            origins.setdefault(item.waiters[0].session, set()).add(i)
        self.last_seq = wires[-1].seq
        everything = blobs[0] if len(blobs) == 1 else b"".join(blobs)
        hub, room = self.deps.hub, self.key
        for user_id in self.members:
            for session in hub.sessions_of(user_id):
                own = origins.get(session)
                if own is None and not session.syncing:
                    session.push(everything)
                    continue
                for i, data in enumerate(blobs):
                    if own is None or i not in own:
                        session.push_event(room, wires[i].seq, data)
        # Acks too leave as one write per sending session.
        acks: dict[Any, list[bytes]] = {}
        for item, wire in zip(items, wires, strict=True):
            for post in item.waiters:
                if post.session is None:
                    post.reply_ok(wire)
                    continue
                acks.setdefault(post.session, []).append(
                    frame(codec.encode(Ok(re=post.request_id, d=wire)))
                )
        for session, parts in acks.items():
            session.push(parts[0] if len(parts) == 1 else b"".join(parts))
        metrics.fanned_out(hub, self.members, items, origins)

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
