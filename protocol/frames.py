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

RoomId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="client-chosen id making a send idempotent")]
Seq = Annotated[int, msgspec.Meta(ge=0)]
RequestId = Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class _Frame(msgspec.Struct, tag_field="t", omit_defaults=True, forbid_unknown_fields=False):
    pass


# ----- payloads ------------------------------------------------------------


class HelloData(msgspec.Struct, omit_defaults=True):
    """Who is connecting, in which protocol version, and where to resume."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    v: int
    device: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "default"
    # Last seq the client has seen, per room: the server replays what is after.
    cursors: dict[RoomId, Seq] = {}


class SendData(msgspec.Struct, omit_defaults=True):
    """A message to post; ``cid`` makes a resend return the original."""

    room: RoomId
    cid: ClientId
    text: str


class Message(msgspec.Struct, omit_defaults=True):
    """A stored room message as clients see it."""

    id: str
    room: str
    seq: int
    sender: str
    cid: str
    text: str
    ts: int  # server time of storage, milliseconds since the Unix epoch
    kind: str = "text"


class WelcomeData(msgspec.Struct, omit_defaults=True):
    """The accepted session and the limits this server applies to it."""

    user: str
    session: str
    v: int
    heartbeat: float  # seconds between server pings
    max_frame: int  # bytes the server accepts in one frame
    max_text: int  # characters in one message text
    ts: int  # server time, ms since epoch


class ResumeGapData(msgspec.Struct, omit_defaults=True):
    """More was missed in ``room`` than the server replays: reload history over REST."""

    room: str
    after: int
    last_seq: int


class ResumeDoneData(msgspec.Struct, omit_defaults=True):
    """Replay is over; frames after this are live. ``rooms`` maps room -> last seq sent."""

    rooms: dict[str, int] = {}


# ----- client -> server ----------------------------------------------------


class Hello(_Frame, tag="hello"):
    """First frame on a connection; answered by ``welcome`` or a close."""

    id: RequestId
    d: HelloData


class Ping(_Frame, tag="ping"):
    """Application-level round trip; answered by ``pong``."""

    id: RequestId


class Send(_Frame, tag="msg.send"):
    """Post a message; answered by ``ok`` (once durably stored) or ``err``."""

    id: RequestId
    d: SendData


ClientFrame = Hello | Ping | Send
CLIENT_FRAME_TYPES: frozenset[str] = frozenset({"hello", "ping", "msg.send"})


# ----- server -> client ----------------------------------------------------


class Welcome(_Frame, tag="welcome"):
    """Reply to ``hello``: the session is open."""

    re: int
    d: WelcomeData


class Ok(_Frame, tag="ok"):
    """Success reply to request ``re``; ``d`` is the stored message for ``msg.send``."""

    re: int
    d: Message | None = None


class Err(_Frame, tag="err"):
    """Failure: ``code`` is an ErrorCode; ``re`` is absent when the request id was unreadable."""

    code: str
    msg: str
    re: int | None = None


class Pong(_Frame, tag="pong"):
    """Reply to ``ping``; ``ts`` is server time, ms since the Unix epoch."""

    re: int
    ts: int


class MsgNew(_Frame, tag="msg.new"):
    """A message in one of your rooms (live or replayed); dedupe by (room, seq)."""

    d: Message


class ResumeGap(_Frame, tag="resume.gap"):
    """Replay for one room was skipped: too much was missed."""

    d: ResumeGapData


class ResumeDone(_Frame, tag="resume.done"):
    """Sent once after ``welcome`` (and any replay); later frames are live."""

    d: ResumeDoneData


ServerFrame = Welcome | Ok | Err | Pong | MsgNew | ResumeGap | ResumeDone
