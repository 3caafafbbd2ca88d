"""Frame types: one closed union per direction, tagged by the ``t`` field.

Envelope (one MessagePack map per WebSocket binary message)::

    client -> server   {"t": type, "id": n, "d": {...}}
    server -> client   {"t": "ok"|"err", "re": n, ...}   replies to request n
                       {"t": "msg.new"|..., "d": {...}}  pushes

Field names are short because every byte is multiplied by fan-out. Adding an
optional field is compatible; removing or retyping one needs a new protocol
version (``protocol.version``). docs/protocol.md documents every frame and
docs/protocol.schema.json is generated from these classes
(``python -m protocol.schema``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocol.frames_ai import (
    AI_CLIENT_TYPES,
    AiAsk,
    AiAttach,
    AiDelta,
    AiDone,
    AiEdit,
    AiError,
    AiRegen,
    AiStart,
    AiStop,
)
from protocol.frames_base import ClientId, Frame, RequestId, RoomId
from protocol.frames_base import Seq as Seq  # re-exported, as before the split
from protocol.frames_calls import (
    CALL_CLIENT_TYPES,
    CallAccept,
    CallDecline,
    CallHangup,
    CallIce,
    CallJoin,
    CallMissed,
    CallOk,
    CallRemoteIce,
    CallRemoteSdp,
    CallRing,
    CallSdp,
    CallStart,
    CallStateFrame,
)
from protocol.frames_chat import (
    CHAT_CLIENT_FRAMES,
    Contact,
    Delete,
    Disappear,
    Edit,
    Forward,
    Location,
    MsgDeleted,
    MsgEdited,
    MsgPinned,
    MsgReaction,
    Pin,
    React,
    ReceiptSet,
    ReceiptUpdate,
    RoomDisappearing,
)
from protocol.frames_chat import (
    Message as Message,  # re-exported: the server knows it as protocol.frames.Message
)
from protocol.frames_chat import (
    Reaction as Reaction,  # re-exported, like the other parts of Message
)
from protocol.frames_chat import (
    ReplyPreview as ReplyPreview,
)
from protocol.frames_chat import (
    StoryQuote as StoryQuote,
)
from protocol.frames_chatlist import ChatSettingsChanged, MsgStarred
from protocol.frames_notify import (
    NOTIFY_CLIENT_FRAMES,
    AdminStats,
    AdminStatsSub,
    AdminStatsUnsub,
    NotifyNew,
    NotifyRead,
)
from protocol.frames_presence import (
    PRESENCE_CLIENT_TYPES,
    Presence,
    PresenceGet,
    PresenceList,
    Typing,
    TypingStart,
    TypingStop,
)
from protocol.frames_stories import StoryGone, StoryNew, StoryReacted, StoryViewed

# What one hello may ask for (issue 12, item 25): every field is bounded, so a
# hello costs the server a bounded amount of work whatever it names.
MAX_HELLO_ROOMS = 1000
# A resume cursor is a seq or an ev: exact in JavaScript numbers, like request ids.
Cursor = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
# Printable text only: no C0/C1 control characters (NUL, newlines, escapes).
DeviceName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern="^[^\\x00-\\x1f\\x7f-\\x9f]+$",
        description="the device's name: 1-64 characters, no control characters",
    ),
]
HelloCursors = Annotated[dict[RoomId, Cursor], msgspec.Meta(max_length=MAX_HELLO_ROOMS)]


# ----- payloads ------------------------------------------------------------


class HelloData(msgspec.Struct, omit_defaults=True):
    """Who is connecting, in which protocol version, and where to resume."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    v: int
    device: DeviceName = "default"
    # Last seq the client has seen, per room: the server replays what is after.
    cursors: HelloCursors = {}
    # Last change event (ev) seen, per room: edits, deletes, reactions and
    # receipts after it are replayed too. A room in cursors but not here gets
    # no change replay; resume.done tells its current ev to start from.
    evs: HelloCursors = {}


class SendData(msgspec.Struct, omit_defaults=True):
    """A message to post; ``cid`` makes a resend return the original."""

    room: RoomId
    cid: ClientId
    text: str = ""  # required for kind "text"; a caption for the other kinds
    kind: str = "text"  # text | image | video | audio | document | location | contact
    reply: Annotated[int, msgspec.Meta(ge=1)] | None = None  # seq replied to, same room
    media: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    loc: Location | None = None
    contact: Contact | None = None


class PlanInfo(msgspec.Struct, omit_defaults=True):
    """The user's plan and AI-message quota when the session opened (REST
    ``GET /billing/subscription`` has the live figures)."""

    name: str  # free | basic | premium
    ai_left: int  # AI messages the user may send now (the tighter of month and day)
    ai_month: int  # AI messages per period (calendar month on free, paid period otherwise)
    ai_month_used: int
    resets: int  # ms since epoch: when the period counter resets (the period's end)
    ai_day: int | None = None  # daily cap, absent when the plan has none
    ai_day_used: int | None = None
    models: list[str] = []  # AI models the plan may use; ["*"] means all
    ending: bool = False  # cancelled: the plan falls back to free at ``resets``


class WelcomeData(msgspec.Struct, omit_defaults=True):
    """The accepted session and the limits this server applies to it."""

    user: str
    session: str
    v: int
    heartbeat: float  # seconds between server pings
    max_frame: int  # bytes the server accepts in one frame
    max_text: int  # characters in one message text
    ts: int  # server time, ms since epoch
    plan: PlanInfo | None = None  # absent when the server runs without billing


class ResumeGapData(msgspec.Struct, omit_defaults=True):
    """More was missed in ``room`` than the server replays: reload history over REST."""

    room: str
    after: int
    last_seq: int
    # True when the change events (edits, deletes, reactions, receipts) missed
    # were too many: reload history, then continue from last_ev.
    changes: bool = False
    last_ev: int = 0


class ResumeDoneData(msgspec.Struct, omit_defaults=True):
    """Replay is over; frames after this are live. ``rooms`` maps room -> last seq sent."""

    rooms: dict[str, int] = {}
    # room -> last change event (ev) covered, for every resumed room.
    evs: dict[str, int] = {}


# ----- client -> server ----------------------------------------------------


class Hello(Frame, tag="hello"):
    """First frame on a connection; answered by ``welcome`` or a close."""

    id: RequestId
    d: HelloData


class AuthData(msgspec.Struct, omit_defaults=True):
    """A fresh access token for the open session: same user, same device session."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class Auth(Frame, tag="auth"):
    """Re-authenticate the open socket before its access token expires.

    Answered ``ok`` (the session now lives until the new token's expiry) or
    ``err`` (``token_expired``, ``unauthorized``, or ``forbidden`` for a token
    of another user or device session; the session keeps its old expiry).
    Without it the server closes the socket with 4004 when the token expires.
    """

    id: RequestId
    d: AuthData


class Ping(Frame, tag="ping"):
    """Application-level round trip; answered by ``pong``."""

    id: RequestId


class Send(Frame, tag="msg.send"):
    """Post a message; answered by ``ok`` (once durably stored) or ``err``."""

    id: RequestId
    d: SendData


ClientFrame = (
    Hello
    | Auth
    | Ping
    | Send
    | AiAsk
    | AiStop
    | AiAttach
    | AiRegen
    | AiEdit
    | Edit
    | Delete
    | React
    | Forward
    | ReceiptSet
    | Pin
    | Disappear
    | TypingStart
    | TypingStop
    | PresenceGet
    | CallStart
    | CallAccept
    | CallDecline
    | CallJoin
    | CallHangup
    | CallSdp
    | CallIce
    | AdminStatsSub
    | AdminStatsUnsub
)
CLIENT_FRAME_TYPES: frozenset[str] = (
    frozenset({"hello", "auth", "ping", "msg.send"})
    | AI_CLIENT_TYPES
    | PRESENCE_CLIENT_TYPES
    | CALL_CLIENT_TYPES
    | frozenset(str(f.__struct_config__.tag) for f in CHAT_CLIENT_FRAMES)
    | frozenset(str(f.__struct_config__.tag) for f in NOTIFY_CLIENT_FRAMES)
)


# ----- server -> client ----------------------------------------------------


class Welcome(Frame, tag="welcome"):
    """Reply to ``hello``: the session is open."""

    re: int
    d: WelcomeData


class Ok(Frame, tag="ok"):
    """Success reply to request ``re``; ``d`` is the stored message for ``msg.send``."""

    re: int
    d: Message | None = None
    ev: int | None = None  # the change event a request created (edit, delete, react, rcpt, pin...)
    ms: list[Message] | None = None  # msg.forward: the copies, one per target room


class Err(Frame, tag="err"):
    """Failure: ``code`` is an ErrorCode; ``re`` is absent when the request id was unreadable."""

    code: str
    msg: str
    re: int | None = None


class Pong(Frame, tag="pong"):
    """Reply to ``ping``; ``ts`` is server time, ms since the Unix epoch."""

    re: int
    ts: int


class MsgNew(Frame, tag="msg.new"):
    """A message in one of your rooms (live or replayed); dedupe by (room, seq)."""

    d: Message


class ResumeGap(Frame, tag="resume.gap"):
    """Replay for one room was skipped: too much was missed."""

    d: ResumeGapData


class ResumeDone(Frame, tag="resume.done"):
    """Sent once after ``welcome`` (and any replay); later frames are live."""

    d: ResumeDoneData


ServerFrame = (
    Welcome
    | Ok
    | Err
    | Pong
    | MsgNew
    | ResumeGap
    | ResumeDone
    | AiStart
    | AiDelta
    | AiDone
    | AiError
    | Typing
    | Presence
    | PresenceList
    | MsgEdited
    | MsgDeleted
    | MsgReaction
    | ReceiptUpdate
    | MsgPinned
    | RoomDisappearing
    | CallOk
    | CallRing
    | CallStateFrame
    | CallRemoteSdp
    | CallRemoteIce
    | CallMissed
    | ChatSettingsChanged
    | MsgStarred
    | NotifyNew
    | NotifyRead
    | AdminStats
    | StoryNew
    | StoryGone
    | StoryViewed
    | StoryReacted
)
