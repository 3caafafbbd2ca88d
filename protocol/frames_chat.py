"""Chat frames: the room message, its kinds, replies, forwards, edits, deletes,
reactions, receipts.

``Message`` (a stored room message as clients see it) lives here with the
types it is made of; ``protocol.frames`` re-exports it and puts these frames
into its ``ClientFrame``/``ServerFrame`` unions. This module imports only
``protocol.frames_base``, so no frame module imports another in a cycle.

Two per-room sequences (see docs/protocol.md, "Change events"):
- ``seq`` numbers messages, gap-free, exactly as before;
- ``ev`` numbers change events (edits, deletes, reactions, receipts, pins,
  the disappearing-messages timer), gap-free
  too. Every push below that changes shared state carries its ``ev``; the
  client keeps one ``ev`` cursor per room next to its ``seq`` cursor and sends
  both in ``hello``.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec

from protocol.frames_base import Frame

RoomId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# Bounded like request ids: exact in JavaScript numbers and in a BIGINT column.
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
MsgSeq = Annotated[int, msgspec.Meta(ge=1, le=2**53)]
RequestId = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Emoji = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]

# Message kinds a client may send. "system" is reserved for server-side posters.
CLIENT_KINDS = ("text", "image", "video", "audio", "document", "location", "contact")
MEDIA_KINDS = frozenset({"image", "video", "audio", "document"})
MAX_FORWARD_TARGETS = 10
PREVIEW_CHARS = 100
MAX_PINS = 3  # pinned messages per room (issue 18)

# Disappearing-messages timers a room may have, and their length in ms.
DisappearTtl = Literal["off", "24h", "7d", "90d"]
DISAPPEAR_TTLS: dict[str, int] = {
    "off": 0,
    "24h": 24 * 3600 * 1000,
    "7d": 7 * 24 * 3600 * 1000,
    "90d": 90 * 24 * 3600 * 1000,
}


# ----- message content -------------------------------------------------------


class Location(msgspec.Struct, omit_defaults=True, gc=False):
    """A point on the map: WGS 84 degrees, with an optional place name."""

    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
    label: Annotated[str, msgspec.Meta(max_length=200)] | None = None

    def __post_init__(self) -> None:
        # Bounds are checked only when decoding; this also guards values built in code.
        if not (math.isfinite(self.lat) and math.isfinite(self.lon)):
            raise ValueError("lat and lon must be finite numbers")


class Contact(msgspec.Struct, omit_defaults=True, gc=False):
    """A contact card: a name and at least one way to reach them."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    phones: Annotated[
        list[
            Annotated[str, msgspec.Meta(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()\-.]+$")]
        ],
        msgspec.Meta(max_length=10),
    ] = []
    emails: Annotated[
        list[
            Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
        ],
        msgspec.Meta(max_length=10),
    ] = []
    user: Annotated[str, msgspec.Meta(max_length=64)] | None = None  # a user id of this server

    def __post_init__(self) -> None:
        if not (self.phones or self.emails or self.user):
            raise ValueError("a contact needs a phone, an email or a user id")


class ReplyPreview(msgspec.Struct, omit_defaults=True, gc=False):
    """What a reply shows of the message it answers (a snapshot at send time)."""

    seq: int
    sender: str
    kind: str = "text"
    text: str = ""  # at most PREVIEW_CHARS characters
    deleted: bool = False  # the original was deleted for everyone


class Reaction(msgspec.Struct, omit_defaults=True, gc=False):
    """One emoji's aggregate on a message: ``n`` users, ``me`` if you are one."""

    e: str
    n: int
    me: bool = False


class StoryQuote(msgspec.Struct, omit_defaults=True, gc=False):
    """What a reply to a story shows of the story (a snapshot at send time)."""

    id: str
    author: str
    kind: str = "text"  # text | image | video
    text: str = ""  # at most PREVIEW_CHARS characters
    media: str | None = None  # GET /stories/{id}/media while the story lives


# gc=False (here and on the structs it holds): rooms keep their recent
# messages in memory, hundreds of thousands on a busy node, and none of them
# can be part of a reference cycle (they hold only strings, numbers and other
# such structs), so the garbage collector need not walk them.
class Message(msgspec.Struct, omit_defaults=True, gc=False):
    """A stored room message as clients see it."""

    id: str
    room: str
    seq: int
    sender: str
    cid: str
    text: str
    ts: int  # server time of storage, milliseconds since the Unix epoch
    kind: str = "text"
    reply: ReplyPreview | None = None
    fwd: bool = False  # forwarded from another message
    media: str | None = None  # upload id (REST media API)
    loc: Location | None = None
    contact: Contact | None = None
    story: StoryQuote | None = None  # a reply to a story: what it quotes of the story
    edited: int | None = None  # time of the last edit, ms since epoch
    deleted: bool = False  # deleted for everyone: text and content are gone
    # Disappearing messages: deleted for everyone at this time (ms since epoch).
    expires_at: int | None = None
    # History (REST) only: aggregated reactions, with "me" for the caller.
    reactions: list[Reaction] | None = None


class MessageMeta(msgspec.Struct, omit_defaults=True):
    """Kind-specific content as stored (JSON) with a message."""

    reply: ReplyPreview | None = None
    story: StoryQuote | None = None  # a reply to a story (issue 15)
    fwd: bool = False
    media: str | None = None
    loc: Location | None = None
    contact: Contact | None = None


# ----- client -> server payloads ----------------------------------------------


class EditData(msgspec.Struct, omit_defaults=True):
    room: RoomId
    seq: MsgSeq
    text: str


class DeleteData(msgspec.Struct, omit_defaults=True):
    """``all``: delete for everyone (tombstone); otherwise hide it for me only."""

    room: RoomId
    seq: MsgSeq
    all: bool = False


class ReactData(msgspec.Struct, omit_defaults=True):
    """Add ``emoji`` (or remove it with ``off``) on message ``seq``."""

    room: RoomId
    seq: MsgSeq
    emoji: Emoji
    off: bool = False


class ForwardData(msgspec.Struct, omit_defaults=True):
    """Forward message ``seq`` of ``room`` to every room in ``to``.

    ``cid`` makes the whole forward idempotent: the copy in each target room is
    stored under ``cid`` there.
    """

    room: RoomId
    seq: MsgSeq
    to: Annotated[list[RoomId], msgspec.Meta(min_length=1, max_length=MAX_FORWARD_TARGETS)]
    cid: ClientId


class ReceiptData(msgspec.Struct, omit_defaults=True):
    """Move my cursors: delivered up to ``dlv``, read up to ``read`` (read implies delivered)."""

    room: RoomId
    read: Seq | None = None
    dlv: Seq | None = None


class PinData(msgspec.Struct, omit_defaults=True):
    """Pin message ``seq`` in ``room`` (or unpin it with ``off``)."""

    room: RoomId
    seq: MsgSeq
    off: bool = False


class DisappearData(msgspec.Struct, omit_defaults=True):
    """Set the room's disappearing-messages timer for messages sent from now on."""

    room: RoomId
    ttl: DisappearTtl


# ----- server -> client payloads ----------------------------------------------


class EditedData(msgspec.Struct, omit_defaults=True):
    room: str
    ev: int
    seq: int
    by: str
    text: str
    at: int  # edited_at, ms since the Unix epoch


class DeletedData(msgspec.Struct, omit_defaults=True):
    """``me``: hidden for you only (your other devices); ``ev`` is then 0 (not logged)."""

    room: str
    seq: int
    by: str
    at: int
    ev: int = 0
    me: bool = False


class ReactionData(msgspec.Struct, omit_defaults=True):
    room: str
    ev: int
    seq: int
    user: str
    emoji: str
    off: bool = False


class ReceiptUpdateData(msgspec.Struct, omit_defaults=True):
    """``user``'s cursors in ``room``. ``unread`` is present only on that user's own devices."""

    room: str
    ev: int
    user: str
    read: int
    dlv: int
    unread: int | None = None


class PinnedData(msgspec.Struct, omit_defaults=True):
    """``seq`` was pinned (or, with ``off``, unpinned); ``pins``: the room's pins after
    it, oldest first."""

    room: str
    ev: int
    seq: int
    by: str
    at: int
    off: bool = False
    pins: list[int] = msgspec.field(default_factory=list)


class DisappearingData(msgspec.Struct, omit_defaults=True):
    """The room's timer is now ``ttl``: messages sent from now on expire after it."""

    room: str
    ev: int
    by: str
    ttl: str  # off | 24h | 7d | 90d
    at: int


# ----- frames ------------------------------------------------------------------


class Edit(Frame, tag="msg.edit"):
    """Edit the text of your own message; answered by ``ok`` with ``ev``."""

    id: RequestId
    d: EditData


class Delete(Frame, tag="msg.delete"):
    """Delete a message for everyone (``all``) or only for you; answered by ``ok``."""

    id: RequestId
    d: DeleteData


class React(Frame, tag="msg.react"):
    """Add or remove a reaction; answered by ``ok`` (``ev`` absent when nothing changed)."""

    id: RequestId
    d: ReactData


class Forward(Frame, tag="msg.forward"):
    """Forward a message to several rooms; answered by ``ok`` with ``ms``, one per target."""

    id: RequestId
    d: ForwardData


class ReceiptSet(Frame, tag="rcpt"):
    """Report delivered/read cursors; answered by ``ok`` (``ev`` absent when nothing moved)."""

    id: RequestId
    d: ReceiptData


class MsgEdited(Frame, tag="msg.edited"):
    """A message's text was edited."""

    d: EditedData


class MsgDeleted(Frame, tag="msg.deleted"):
    """A message was deleted for everyone (or, with ``me``, hidden for you)."""

    d: DeletedData


class MsgReaction(Frame, tag="msg.reaction"):
    """A reaction was added or (``off``) removed."""

    d: ReactionData


class ReceiptUpdate(Frame, tag="rcpt.update"):
    """A member's delivered/read cursors moved; a read of N covers every seq up to N."""

    d: ReceiptUpdateData


class Pin(Frame, tag="msg.pin"):
    """Pin (or unpin) a message; admins of a group, either member of a direct room.
    Answered by ``ok`` with ``ev`` (absent when nothing changed)."""

    id: RequestId
    d: PinData


class Disappear(Frame, tag="room.disappear"):
    """Set the disappearing-messages timer; who may: as for ``msg.pin``.
    Answered by ``ok`` with ``ev`` (absent when the timer was already so)."""

    id: RequestId
    d: DisappearData


class MsgPinned(Frame, tag="msg.pinned"):
    """A message was pinned or (``off``) unpinned in the room."""

    d: PinnedData


class RoomDisappearing(Frame, tag="room.disappearing"):
    """The room's disappearing-messages timer changed."""

    d: DisappearingData


CHAT_CLIENT_FRAMES = (Edit, Delete, React, Forward, ReceiptSet, Pin, Disappear)
CHAT_SERVER_FRAMES = (
    MsgEdited,
    MsgDeleted,
    MsgReaction,
    ReceiptUpdate,
    MsgPinned,
    RoomDisappearing,
)
