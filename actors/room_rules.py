"""Pure rules of a room: what content may be posted, who may change what, and
how stored rows become wire messages. No I/O; tested directly.

Every ``*_problem`` function answers ``None`` (allowed) or the error code and
message the client gets, so the actor and the REST bridge refuse alike.
"""

from __future__ import annotations

import msgspec

from protocol.emoji import emoji_problem
from protocol.emoji import is_emoji as is_emoji  # the gateway checks reactions with it too
from protocol.errors import ErrorCode
from protocol.frames import Message, SendData
from protocol.frames_chat import (
    CLIENT_KINDS,
    MEDIA_KINDS,
    PREVIEW_CHARS,
    MessageMeta,
    ReplyPreview,
)
from storage.base import StoredMessage

Problem = tuple[ErrorCode, str] | None

# Kinds the server itself may post (PostAs with system=True, AI answers).
SERVER_KINDS = frozenset({*CLIENT_KINDS, "system", "ai"})
ADMIN_ROLES = frozenset({"owner", "admin"})

_meta_encoder = msgspec.json.Encoder()
_meta_decoder = msgspec.json.Decoder(MessageMeta)


def text_problem(text: str, max_chars: int, *, required: bool = True) -> Problem:
    if required and not text.strip():
        return ErrorCode.INVALID, "Message text must not be empty."
    if "\x00" in text:
        # PostgreSQL cannot store NUL in text; refuse it on every backend alike.
        return ErrorCode.INVALID, "Message text must not contain NUL."
    if len(text) > max_chars:
        return (
            ErrorCode.MESSAGE_TOO_LONG,
            f"Message text is {len(text)} characters; the limit is {max_chars}.",
        )
    return None


def content_problem(d: SendData, max_chars: int) -> Problem:
    """Whether a ``msg.send`` payload is a well-formed message of its kind."""
    if d.kind not in CLIENT_KINDS:
        return ErrorCode.INVALID, f"Unknown message kind {d.kind[:32]!r}."
    problem = text_problem(d.text, max_chars, required=d.kind == "text")
    if problem is not None:
        return problem
    extras = {"media": d.media, "loc": d.loc, "contact": d.contact}
    wanted = {"location": "loc", "contact": "contact"}.get(d.kind)
    if d.kind in MEDIA_KINDS:
        wanted = "media"
    for name, value in extras.items():
        if name == wanted and value is None:
            return ErrorCode.INVALID, f"A {d.kind} message needs '{name}'."
        if name != wanted and value is not None:
            return ErrorCode.INVALID, f"'{name}' does not belong in a {d.kind} message."
    return None


def meta_of(d: SendData, reply: ReplyPreview | None, *, fwd: bool = False) -> MessageMeta | None:
    meta = MessageMeta(reply=reply, fwd=fwd, media=d.media, loc=d.loc, contact=d.contact)
    return None if meta == _EMPTY_META else meta


_EMPTY_META = MessageMeta()


def encode_meta(meta: MessageMeta | None) -> str | None:
    return None if meta is None else _meta_encoder.encode(meta).decode()


def decode_meta(raw: str | None) -> MessageMeta | None:
    return None if raw is None else _meta_decoder.decode(raw)


def preview_of(m: Message) -> ReplyPreview:
    if m.deleted:
        return ReplyPreview(seq=m.seq, sender=m.sender, kind=m.kind, deleted=True)
    return ReplyPreview(seq=m.seq, sender=m.sender, kind=m.kind, text=m.text[:PREVIEW_CHARS])


def scrub_reply(raw_meta: str) -> str:
    """A reply's meta with the preview of its (now deleted) original emptied."""
    meta = _meta_decoder.decode(raw_meta)
    if meta.reply is not None:
        meta.reply = ReplyPreview(
            seq=meta.reply.seq, sender=meta.reply.sender, kind=meta.reply.kind, deleted=True
        )
    return _meta_encoder.encode(meta).decode()


def to_wire(m: StoredMessage) -> Message:
    wire = Message(
        id=m.id,
        room=m.room_id,
        seq=m.seq,
        sender=m.sender_id,
        cid=m.cid,
        text=m.text,
        ts=m.created_at,
        kind=m.kind,
    )
    if m.expires_at is not None:
        wire.expires_at = m.expires_at
    if m.deleted_at is not None:
        wire.deleted = True
        return wire
    if m.edited_at is not None:
        wire.edited = m.edited_at
    if m.meta is not None:
        meta = _meta_decoder.decode(m.meta)
        wire.reply, wire.fwd, wire.media = meta.reply, meta.fwd, meta.media
        wire.loc, wire.contact, wire.story = meta.loc, meta.contact, meta.story
    return wire


def forwarded_copy(original: Message) -> SendData:
    """The content of ``original`` to post elsewhere (no reply: it would dangle)."""
    return SendData(
        room=original.room,
        cid=original.cid,
        text=original.text,
        kind=original.kind,
        media=original.media,
        loc=original.loc,
        contact=original.contact,
    )


# ----- who may change what ------------------------------------------------------


def edit_problem(m: Message | None, user_id: str) -> Problem:
    if m is None:
        return ErrorCode.NOT_FOUND, "No such message in this room."
    if m.deleted:
        return ErrorCode.CONFLICT, "This message was deleted; it cannot be edited."
    if m.sender != user_id:
        return ErrorCode.FORBIDDEN, "Only the sender may edit a message."
    return None


def delete_problem(
    m: Message | None, user_id: str, role: str | None, now: int, window_ms: int
) -> Problem:
    """Delete for everyone: the sender or a group admin, within the window."""
    if m is None:
        return ErrorCode.NOT_FOUND, "No such message in this room."
    if m.deleted:
        return ErrorCode.CONFLICT, "This message was already deleted."
    if m.sender != user_id and role not in ADMIN_ROLES:
        return ErrorCode.FORBIDDEN, "Only the sender or a group admin may delete for everyone."
    if window_ms > 0 and now - m.ts > window_ms:
        return (
            ErrorCode.FORBIDDEN,
            f"Messages can be deleted for everyone only within {window_ms // 1000} s.",
        )
    return None


def react_problem(m: Message | None, emoji: str) -> Problem:
    if (problem := emoji_problem(emoji)) is not None:
        return ErrorCode.INVALID, problem
    if m is None:
        return ErrorCode.NOT_FOUND, "No such message in this room."
    if m.deleted:
        return ErrorCode.CONFLICT, "This message was deleted."
    return None


# ----- pins and the disappearing-messages timer (issue 18) -------------------------


def manage_problem(room_kind: str, role: str | None) -> Problem:
    """Pinning and the timer: a group's admins (and owner); either member of a direct room."""
    if room_kind == "direct" or role in ADMIN_ROLES:
        return None
    return ErrorCode.FORBIDDEN, "Only a group admin may pin messages or change this setting."


def pin_problem(m: Message | None, pinned: list[int], max_pins: int) -> Problem:
    """Pinning ``m`` (not pinned yet) next to the ``pinned`` seqs."""
    if m is None or m.deleted:
        return ErrorCode.NOT_FOUND, "No such message in this room."
    if len(pinned) >= max_pins:
        return (
            ErrorCode.PIN_LIMIT,
            f"The room already has {max_pins} pinned messages; unpin one first.",
        )
    return None
