"""The room actor's change events: edits, deletes, reactions and receipts.

Why a second per-room sequence (``ev``) instead of one sequence for everything:
``seq`` numbers messages only and stays gap-free, so ``last_seq - read_seq``
style unread arithmetic, history paging by seq and the message hot path
(group-committed batches, one-write fan-out) are untouched. Change events are
rarer, each is stored in its own small transaction together with the change
(``storage.messages_rich``) and gets the next ``ev``; clients keep an ``ev``
cursor per room beside the ``seq`` cursor and a reconnect replays both. One
shared sequence would have interleaved rare change rows into the message
batches and made every seq-based client computation skip numbers.

Rules (on top of actors.room's):
- A change is stored, with its event row, BEFORE the requester's ``ok`` and
  before any member sees it. The actor awaits that write: changes of one room
  are serialised, which is what keeps ``ev`` gap-free without a lock.
- A failed write answers ``unavailable`` and marks the room stale: ``last_ev``
  (and the rest) is re-read from storage before the next change (a lost
  commit answer must not fork the sequence), and a storage still down
  answers that change ``unavailable`` too instead of crashing the room.
- Every event row carries its own frame with its own ``ev``: a rewrite of a
  stored event (delete for everyone erasing an earlier edit's text) keeps
  the row's ``ev`` in the frame, so a replay is exactly the stored sequence,
  gap-free and without duplicates (issue 12, item 10).
- The REST bridge moves read cursors through the same ``Change`` (with a
  ``Reply`` instead of a session): one code path, same events.
- Each event is encoded once; the same bytes are stored (for resume) and
  queued to every online member session except the requester's (it has the
  ``ok``). Live events held during a session's replay are deduplicated by
  ``ev`` (key ``room + EV_KEY``), like messages by ``seq``.
- "Delete for me" is private: no event, only the user's other devices hear.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Union

import msgspec
import trio
from msgspec.structs import replace as update

from actors.errors import ActorError, AskTimeout, Rejected
from actors.once import Once
from actors.room_link import RemoteChange
from actors.room_rules import (
    delete_problem,
    edit_problem,
    react_problem,
    scrub_reply,
    to_wire,
)
from actors.sessions import MemberSession
from protocol import codec
from protocol.errors import ErrorCode
from protocol.frames import Err, Message, Ok
from protocol.frames_chat import (
    DeleteData,
    DeletedData,
    DisappearData,
    EditData,
    EditedData,
    MsgDeleted,
    MsgEdited,
    MsgReaction,
    PinData,
    ReactData,
    ReactionData,
    ReceiptData,
    ReceiptUpdate,
    ReceiptUpdateData,
    ReplyPreview,
)
from storage.errors import StoreError
from storage.messages_rich import RoomEvent
from storage.outage import StorageHealth, is_outage
from storage.room_pins import Pin, pins_store

if TYPE_CHECKING:
    from actors.room import ReplayResult, RoomDeps
    from actors.runtime import ActorSystem, Reply

log = logging.getLogger(__name__)

# Suffix of the key under which a session holds live change events during replay.
EV_KEY = "\x00ev"


@dataclass(frozen=True, slots=True)
class ExpireData:
    """From the expiry sweeper: erase these messages if their ``expires_at`` <= ``now``."""

    seqs: tuple[int, ...]
    now: int


ChangeOp = EditData | DeleteData | ReactData | ReceiptData | PinData | DisappearData | ExpireData


def skip_of(change: AnyChange) -> Skip:
    """Who must not get a change's event (it gets the ``ok``): the local
    session, or (node, connection) of a change forwarded from another node."""
    return change.skip if isinstance(change, RemoteChange) else change.session


@dataclass(frozen=True, slots=True)
class ChangeDone:
    """What a ``Change`` with a ``reply`` slot answers (REST)."""

    ev: int | None  # None: nothing changed, no event
    read: int | None = None  # for receipts: the reader's cursors after the change
    dlv: int | None = None


class Change(msgspec.Struct, frozen=True, eq=False):
    """Cast: apply ``op`` as ``user_id``; reply to ``session`` (a socket) or ``reply`` (REST)."""

    session: MemberSession | None  # None with ``reply``
    request_id: int
    user_id: str
    op: ChangeOp
    reply: Reply[ChangeDone] | None = None
    once: Once = msgspec.field(default_factory=Once)  # exactly one answer

    def reply_ok(self, ev: int | None = None, cursors: tuple[int, int] | None = None) -> None:
        if not self.once.claim():
            return
        if self.reply is not None:
            read, dlv = cursors if cursors is not None else (None, None)
            self.reply.set(ChangeDone(ev, read, dlv))
        elif self.session is not None:  # one of the two is always given
            self.session.push_frame(Ok(re=self.request_id, ev=ev))

    def reply_err(self, code: ErrorCode, msg: str) -> None:
        if not self.once.claim():
            return
        if self.reply is not None:
            self.reply.fail(Rejected(msg, code=code))
        elif self.session is not None:
            self.session.push_frame(Err(code=code.value, msg=msg, re=self.request_id))

    def fail(self, error: ActorError) -> None:
        self.reply_err(error.code, error.message)


AnyChange = Union["Change", RemoteChange]
Skip = MemberSession | tuple[str, int] | None
"""Who gets a change's ``ok`` instead of its event: a session here, (node,
connection) of a change forwarded from another node, or nobody (REST)."""


async def change_as(
    system: ActorSystem,
    room_id: str,
    user_id: str,
    op: ChangeOp,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - ask-style contract, like ActorRef.ask
) -> ChangeDone:
    """Apply ``op`` in ``room_id`` as ``user_id`` without a socket (the REST bridge).

    Exactly what the socket frame does (events, pushes to every device), since
    it is the same message to the same actor. Raises ``Rejected`` (``code``:
    not_member, not_found, unavailable...), another ``ActorError``, or
    ``AskTimeout`` after ``timeout`` (default: the system's ask timeout).
    """
    from actors.room import ROOM
    from actors.runtime import Reply

    reply: Reply[ChangeDone] = Reply()
    limit = system.ask_timeout if timeout is None else timeout
    with trio.move_on_after(limit):
        await system.ref(ROOM, room_id).tell(Change(None, 0, user_id, op, reply))
        return await reply.wait()
    raise AskTimeout(f"room:{room_id} did not apply the change within {limit:g}s")


class RoomChanges:
    """Mixin of RoomActor: everything about ``ev``. State lives on the actor."""

    key: str
    deps: RoomDeps
    members: set[str]
    roles: dict[str, str]
    cursors: dict[str, tuple[int, int]]
    last_seq: int
    last_ev: int
    cache: deque[Message]
    by_cid: OrderedDict[tuple[str, str], Message]
    health: StorageHealth
    stale_room: bool
    pins: list[Pin]  # oldest first (issue 18)
    disappear_ms: int  # the room's timer for new messages; 0 is off

    async def _refresh(self) -> None: ...

    async def _other_change(self, change: AnyChange) -> None:
        raise ActorError(f"room cannot apply {type(change.op).__name__}")

    async def _load_changes(self) -> None:
        rich = self.deps.rich
        self.last_ev = await rich.last_ev(self.key)
        extras = await pins_store(self.deps.store).load(self.key)
        self.pins, self.disappear_ms = extras.pins, extras.disappear_ms
        self.cursors = {
            c.user_id: (c.read_seq, c.delivered_seq) for c in await rich.member_cursors(self.key)
        }

    # ----- message lookup ---------------------------------------------------------

    async def _find(self, seq: int) -> Message | None:
        cache = self.cache
        if cache and cache[0].seq <= seq <= cache[-1].seq:
            # Cached seqs are contiguous: seq is gap-free and batches land in order.
            return cache[seq - cache[0].seq]
        if seq < 1 or seq > self.last_seq:
            return None
        row = await self.deps.rich.message_at(self.key, seq)
        return None if row is None else to_wire(row)

    def _recache(self, message: Message) -> None:
        cache = self.cache
        if cache and cache[0].seq <= message.seq <= cache[-1].seq:
            cache[message.seq - cache[0].seq] = message
        key = (message.sender, message.cid)
        if key in self.by_cid:
            self.by_cid[key] = message

    # ----- dispatch --------------------------------------------------------------

    async def _change(self, change: AnyChange) -> None:
        ev_before = self.last_ev
        try:
            await self._refresh()
            if change.user_id not in self.members and not isinstance(change.op, ExpireData):
                change.reply_err(
                    ErrorCode.NOT_MEMBER,
                    "You are not a member of this room (or it does not exist).",
                )
                return
            match change.op:
                case EditData():
                    await self._edit(change, change.op)
                case DeleteData():
                    await self._delete(change, change.op)
                case ReactData():
                    await self._react(change, change.op)
                case ReceiptData():
                    await self._receipt(change, change.op)
                case _:
                    await self._other_change(change)
            if self.last_ev != ev_before:
                self.health.succeeded()  # a write worked: storage is back, if it was away
        except StoreError as exc:
            if is_outage(exc):
                self.health.failed(exc)  # one log line per outage, not per change
            else:
                log.warning("room %s: change refused by storage: %r", self.key, exc)
            # The commit may have happened with its answer lost: trust storage,
            # re-read before the next change (not now: it may be down).
            self.stale_room = True
            change.reply_err(ErrorCode.UNAVAILABLE, "The change was not stored; retry it.")

    async def _edit(self, change: AnyChange, op: EditData) -> None:
        m = await self._find(op.seq)
        problem = edit_problem(m, change.user_id)
        if problem is not None:
            change.reply_err(*problem)
            return
        assert m is not None
        ev, at = self.last_ev + 1, self.deps.clock()
        raw = codec.encode(
            MsgEdited(
                d=EditedData(
                    room=self.key, ev=ev, seq=op.seq, by=change.user_id, text=op.text, at=at
                )
            )
        )
        if not await self.deps.rich.edit(
            self.key, op.seq, op.text, RoomEvent(ev, "edit", op.seq, raw, at)
        ):
            change.reply_err(ErrorCode.CONFLICT, "This message was deleted; it cannot be edited.")
            return
        self.last_ev = ev
        self._recache(update(m, text=op.text, edited=at))
        self._broadcast(raw, ev, skip=skip_of(change))
        change.reply_ok(ev)

    async def _delete(self, change: AnyChange, op: DeleteData) -> None:
        m = await self._find(op.seq)
        if not op.all:
            if m is None:
                change.reply_err(ErrorCode.NOT_FOUND, "No such message in this room.")
                return
            await self.deps.rich.hide(self.key, change.user_id, op.seq)
            raw = codec.encode(
                MsgDeleted(
                    d=DeletedData(
                        room=self.key, seq=op.seq, by=change.user_id, at=self.deps.clock(), me=True
                    )
                )
            )
            self._to_user(change.user_id, raw, None, skip_of(change))
            change.reply_ok()
            return
        now = self.deps.clock()
        problem = delete_problem(
            m, change.user_id, self.roles.get(change.user_id), now, self.deps.delete_window_ms
        )
        if problem is not None:
            change.reply_err(*problem)
            return
        assert m is not None
        ev = await self._erase(m, change.user_id, now, skip=skip_of(change))
        change.reply_ok(ev)

    async def _erase(self, m: Message, by: str, now: int, *, skip: Skip) -> int:
        """Delete ``m`` for everyone: store, recache, tell the room; the new ``ev``.

        The one path of delete-for-everyone, whoever asks (its sender, an
        admin, or the expiry of a disappearing message).
        """
        ev, seq = self.last_ev + 1, m.seq

        def deleted(ev: int) -> bytes:
            return codec.encode(
                MsgDeleted(d=DeletedData(room=self.key, seq=seq, by=by, at=now, ev=ev))
            )

        raw = deleted(ev)
        scrubbed = await self.deps.rich.delete_for_all(
            self.key, seq, RoomEvent(ev, "delete", seq, raw, now), scrub_reply, deleted
        )
        self.last_ev = ev
        # Storage dropped its pin in the same transaction.
        self.pins = [p for p in self.pins if p.seq != seq]
        self._recache(
            update(
                m,
                text="",
                deleted=True,
                reply=None,
                fwd=False,
                media=None,
                loc=None,
                contact=None,
                edited=None,
            )
        )
        for reply_seq, _meta in scrubbed:
            cached = await self._find(reply_seq) if self._cached(reply_seq) else None
            if cached is not None and cached.reply is not None:
                gone = ReplyPreview(seq=seq, sender=m.sender, kind=m.kind, deleted=True)
                self._recache(update(cached, reply=gone))
        self._broadcast(raw, ev, skip=skip)
        return ev

    def _cached(self, seq: int) -> bool:
        return bool(self.cache) and self.cache[0].seq <= seq <= self.cache[-1].seq

    async def _react(self, change: AnyChange, op: ReactData) -> None:
        m = await self._find(op.seq)
        problem = react_problem(m, op.emoji)
        if problem is not None:
            change.reply_err(*problem)
            return
        ev, at = self.last_ev + 1, self.deps.clock()
        raw = codec.encode(
            MsgReaction(
                d=ReactionData(
                    room=self.key,
                    ev=ev,
                    seq=op.seq,
                    user=change.user_id,
                    emoji=op.emoji,
                    off=op.off,
                )
            )
        )
        changed = await self.deps.rich.react(
            self.key,
            op.seq,
            change.user_id,
            op.emoji,
            op.off,
            RoomEvent(ev, "react", op.seq, raw, at),
        )
        if not changed:
            change.reply_ok()  # already so: idempotent, no event
            return
        self.last_ev = ev
        self._broadcast(raw, ev, skip=skip_of(change))
        change.reply_ok(ev)

    async def _receipt(self, change: AnyChange, op: ReceiptData) -> None:
        user = change.user_id
        read0, dlv0 = self.cursors.get(user, (0, 0))
        # Cursors never move back, never past the last message; read implies delivered.
        read = read0 if op.read is None else max(read0, min(op.read, self.last_seq))
        dlv = max(dlv0, read, min(op.dlv or 0, self.last_seq))
        if (read, dlv) == (read0, dlv0):
            change.reply_ok(cursors=(read, dlv))
            return
        # Counted before the write: once stored, nothing may fail before the
        # event goes out (or the stored receipt would be answered unavailable).
        unread = await self._unread(user, read)
        ev, at = self.last_ev + 1, self.deps.clock()
        receipt = ReceiptUpdateData(room=self.key, ev=ev, user=user, read=read, dlv=dlv)
        raw = codec.encode(ReceiptUpdate(d=receipt))
        await self.deps.rich.set_receipt(
            self.key, user, read, dlv, RoomEvent(ev, "rcpt", None, raw, at)
        )
        self.last_ev = ev
        self.cursors[user] = (read, dlv)
        # The reader's own devices also get the unread count the new cursor leaves.
        own = codec.encode(ReceiptUpdate(d=update(receipt, unread=unread)))
        self._to_user(user, own, ev, skip_of(change))
        self._broadcast(raw, ev, skip=skip_of(change), except_user=user)
        change.reply_ok(ev, cursors=(read, dlv))

    async def _unread(self, user: str, read: int) -> int:
        cache = self.cache
        if cache and cache[0].seq <= read + 1:
            return sum(1 for m in cache if m.seq > read and m.sender != user and not m.deleted)
        return await self.deps.rich.unread(self.key, user, read)

    def _to_user(self, user: str, raw: bytes, ev: int | None, skip: Skip) -> None:
        """A frame for ``user``'s devices only (but ``skip``), on every node;
        with ``ev``, held and deduplicated like room events during a replay."""
        data = self.deps.frame(raw)
        for session in self.deps.hub.sessions_of(user):
            if session is not skip:
                if ev is None:
                    session.push(data)
                else:
                    session.push_event(self.key + EV_KEY, ev, data)
        if self.deps.link is not None:
            self.deps.link.to_user(self.key, user, raw, ev, skip)

    def _broadcast(
        self, raw: bytes, ev: int, *, skip: Skip, except_user: str | None = None
    ) -> None:
        if self.deps.link is not None:
            self.deps.link.event(self.key, raw, ev, skip, except_user)
        data = self.deps.frame(raw)
        hub, key = self.deps.hub, self.key + EV_KEY
        for user_id in self.members:
            if user_id == except_user:
                continue
            for session in hub.sessions_of(user_id):
                if session is not skip:
                    session.push_event(key, ev, data)

    # ----- resume ---------------------------------------------------------------

    async def _replay_events(self, result: ReplayResult, after_ev: int) -> ReplayResult:
        last = self.last_ev
        if after_ev >= last:
            return replace(result, last_ev=last)
        if last - after_ev > self.deps.resume_max:
            return replace(result, last_ev=last, events_truncated=True)
        rows = await self.deps.rich.events_after(self.key, after_ev, last - after_ev)
        return replace(result, events=[r.frame for r in rows if r.ev <= last], last_ev=last)
