"""What rooms' nodes say to each other on the bus (issue 13): sans-I/O types.

One MessagePack map per bus message, tagged by ``t``. A committed batch
carries the wire ``Message`` structs (each receiving node frames them once
for all its sessions); change events carry the encoded push frame, the same
bytes the leader stored for resume.
"""

from __future__ import annotations

import msgspec

from protocol.frames import Message
from protocol.frames_chat import MessageMeta


class Batch(msgspec.Struct, tag="batch", gc=False):
    """On ``r:<room>``: messages the leader committed, in seq order."""

    room: str
    messages: list[Message]


class Event(msgspec.Struct, tag="ev", gc=False):
    """On ``r:<room>``: a change event for every member but ``except_user``;
    ``skip`` is (node, connection) of the requester, who has the ``ok``."""

    room: str
    raw: bytes
    ev: int
    skip: tuple[str, int] | None = None
    except_user: str | None = None


class ToUser(msgspec.Struct, tag="user", gc=False):
    """On ``r:<room>``: a frame for one member's devices (delete for me, own receipt)."""

    room: str
    user: str
    raw: bytes
    ev: int | None = None
    skip: tuple[str, int] | None = None


class Members(msgspec.Struct, tag="members", gc=False):
    """On the deployment's ``members`` channel: who belongs to ``room``, or
    whether its pair blocked each other, changed. Every node re-reads it."""

    room: str
    blocks: bool = False


class ForwardPost(msgspec.Struct, tag="post", gc=False):
    """On ``n:<leader>``: a post sent on ``origin``; ``fid`` names it there."""

    room: str
    origin: str
    fid: int
    sender: str
    cid: str
    text: str
    kind: str = "text"
    meta: MessageMeta | None = None
    system: bool = False
    reply_to: int | None = None
    batch_ack: bool = False


class ForwardChange(msgspec.Struct, tag="change", gc=False):
    """On ``n:<leader>``: a change (``op`` encoded, ``op_type`` its class name)."""

    room: str
    origin: str
    fid: int
    user: str
    op_type: str
    op: bytes
    skip: tuple[str, int] | None = None


class Answered(msgspec.Struct, tag="answer", gc=False):
    """On ``n:<origin>``: how forwarded request ``fid`` went."""

    fid: int
    message: Message | None = None
    ev: int | None = None
    cursors: tuple[int, int] | None = None
    code: str = ""
    text: str = ""


class Forwards(msgspec.Struct, tag="fwds", gc=False):
    """On ``n:<leader>``: what one node forwarded to it in one scheduler tick,
    in the order it was forwarded (one bus message instead of one per post)."""

    items: list[ForwardPost | ForwardChange]


RoomTraffic = Batch | Event | ToUser
NodeTraffic = ForwardPost | ForwardChange | Answered | Forwards

room_decoder = msgspec.msgpack.Decoder(RoomTraffic)
node_decoder = msgspec.msgpack.Decoder(NodeTraffic)
members_decoder = msgspec.msgpack.Decoder(Members)
encoder = msgspec.msgpack.Encoder()
