"""What a room actor needs from the other nodes (issue 13), and the requests
that arrive from them.

A room has ONE leader in the whole cluster: the node holding its lease
(``storage.leases``). On that node the room actor is what it always was:
it assigns seq and ev, stores, acks and fans out; it also publishes each
committed batch and each change event once on the room's bus channel. On
every other node the room actor is a *follower*: it forwards posts and
changes to the leader, and answers reads (resume, a message, pins) from the
shared database. Fan-out of what the leader publishes happens at node level
(``realtime_server.cluster.rooms``), not in the follower actor: a node with
a member online listens on the room's channel whether or not an actor of the
room runs there.

``RoomLink`` is the seam: ``actors/`` knows nothing of buses or Redis; the
node gives its room actors a link (``None`` on a single node, where nothing
here runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeAlias

import msgspec

from actors.errors import ActorError
from actors.once import Once
from protocol.errors import ErrorCode
from protocol.frames import Message
from protocol.frames_chat import MessageMeta
from storage.leases import Holder

if TYPE_CHECKING:  # the room's own messages; actors.room imports this module
    from actors.room import Post, PostAs
    from actors.room_changes import Change, ChangeOp, Skip


class RoomLink(Protocol):
    node_key: str

    async def claim(self, room_id: str) -> Holder:
        """Take the room's lease if it is free or its holder is dead; who holds it now."""
        ...

    def forward(self, owner: str, room_id: str, msg: Forwarded) -> None:
        """Send a post or change to the leader; raises ``ActorError`` (unavailable) if
        the bus is down. Its answer comes back through the link, or a ``Reforward``."""
        ...

    def batch_committed(self, room_id: str, messages: list[Message]) -> None:
        """The leader stored these: every other node fans them out to its sessions."""
        ...

    def event(self, room_id: str, raw: bytes, ev: int, skip: Skip, except_user: str | None) -> None:
        """A change event for every member (but ``except_user``) on other nodes;
        ``skip`` is the requester's session (local or remote): it has the ``ok``."""
        ...

    def to_user(self, room_id: str, user_id: str, raw: bytes, ev: int | None, skip: Skip) -> None:
        """A frame for one member's devices on other nodes (delete for me, own receipt)."""
        ...

    def taken_back(self, msg: Forwarded) -> None:
        """A forwarded request is handled here after all (this node leads now):
        stop waiting for the old leader's answer."""
        ...

    def answer(self, origin: str, fid: int, result: Answer) -> None:
        """Answer a forwarded request on the node it came from."""
        ...


@dataclass(frozen=True, slots=True)
class Answer:
    """How a forwarded request went, as its origin node needs it."""

    message: Message | None = None  # a post's stored message
    ev: int | None = None  # a change's event
    cursors: tuple[int, int] | None = None  # a receipt's (read, delivered)
    code: str = ""  # an error: its code and text
    text: str = ""


class RemotePost(msgspec.Struct, frozen=True, eq=False):
    """A post forwarded from another node: same path as a local one; its
    answer goes back to ``origin``. ``batch_ack``: the origin listens on the
    room's channel, so a stored message is acknowledged there by the batch
    itself (in seq order with the fan-out) and needs no answer of its own."""

    link: RoomLink
    origin: str
    fid: int
    sender_id: str
    cid: str
    text: str
    kind: str = "text"
    meta: MessageMeta | None = None
    system: bool = False
    reply_to: int | None = None
    batch_ack: bool = False
    session: None = None
    request_id: int = 0
    once: Once = msgspec.field(default_factory=Once)  # exactly one answer
    REMOTE: ClassVar[bool] = True

    def claim(self) -> bool:
        return self.once.claim()

    def reply_ok(self, message: Message) -> None:
        if self.claim():
            self.link.answer(self.origin, self.fid, Answer(message=message))

    def reply_err(self, code: ErrorCode, msg: str) -> None:
        if self.claim():
            self.link.answer(self.origin, self.fid, Answer(code=code.value, text=msg))

    def fail(self, error: ActorError) -> None:
        self.reply_err(error.code, error.message)


class RemoteChange(msgspec.Struct, frozen=True, eq=False):
    """A change forwarded from another node. ``skip`` names the requester's
    connection there (it gets the ``ok``, not the event)."""

    link: RoomLink
    origin: str
    fid: int
    user_id: str
    op: ChangeOp
    skip: tuple[str, int] | None
    session: None = None
    request_id: int = 0
    reply: None = None
    once: Once = msgspec.field(default_factory=Once)  # exactly one answer

    def reply_ok(self, ev: int | None = None, cursors: tuple[int, int] | None = None) -> None:
        if self.once.claim():
            self.link.answer(self.origin, self.fid, Answer(ev=ev, cursors=cursors))

    def reply_err(self, code: ErrorCode, msg: str) -> None:
        if self.once.claim():
            self.link.answer(self.origin, self.fid, Answer(code=code.value, text=msg))

    def fail(self, error: ActorError) -> None:
        self.reply_err(error.code, error.message)


Forwarded: TypeAlias = "Post | PostAs | RemotePost | Change | RemoteChange"
"""A request a follower sends to the room's leader."""


@dataclass(frozen=True, slots=True, eq=False)
class Reforward:
    """Cast by the link: ``msg`` was forwarded and not answered in time (the
    leader may be dead). The actor claims the room again, then handles it or
    forwards it to whoever leads now; a resend is safe by the cid rule."""

    msg: Forwarded

    def fail(self, error: ActorError) -> None:
        self.msg.fail(error)


@dataclass(frozen=True, slots=True)
class Reclaim:
    """Cast by the link when this node's lease was found run out (it was
    paused or cut off): claim the room again before the next write."""
