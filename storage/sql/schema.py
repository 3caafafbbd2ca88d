"""What both backends share about the schema: column orders and name folding.

Each ``*_COLUMNS`` string lists columns in the order of its dataclass's fields,
so a row from either driver (a tuple or an asyncpg ``Record``) becomes a record
with ``Cls(*row)``. Keep them in step with ``storage.base``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from storage.base import Room, RoomMember, RoomSummary, StoredMessage

T = TypeVar("T")

USER_COLUMNS = "id, email, username, display_name, password_hash, created_at"
TOKEN_COLUMNS = (
    "token_hash, user_id, family_id, device, created_at, expires_at, used_at, revoked_at"
)
ROOM_COLUMNS = "id, kind, name, created_by, created_at"
MESSAGE_COLUMNS = (
    "id, room_id, seq, sender_id, cid, text, created_at, kind, meta, reply_to, edited_at, "
    "deleted_at, expires_at"
)
MEMBER_COLUMNS = "user_id, role, read_seq"


def prefixed(alias: str, columns: str) -> str:
    """``prefixed("m", "id, seq")`` -> ``"m.id, m.seq"``, for joins."""
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def fold(name: str) -> str:
    """The case-insensitive key of an email or username.

    Done in Python rather than SQL so SQLite (ASCII-only ``lower()``) and
    PostgreSQL (collation-dependent) agree on what "the same name" means.
    """
    return name.strip().lower()


def room_from_row(row: Sequence[Any], members: tuple[RoomMember, ...]) -> Room:
    """``row`` is ROOM_COLUMNS followed by direct_key."""
    return Room(
        id=row[0],
        kind=row[1],
        name=row[2],
        created_by=row[3],
        created_at=row[4],
        members=members,
        direct_key=row[5],
    )


def summary_from_row(row: Sequence[Any], members: tuple[RoomMember, ...]) -> RoomSummary:
    """A row of the backends' list-rooms query: ROOM_COLUMNS, direct_key,
    last_seq, unread, then MESSAGE_COLUMNS (all NULL when the room is empty)."""
    values = tuple(row)
    message = values[8:]
    last = None if message[0] is None else StoredMessage(*message)
    return RoomSummary(
        room=room_from_row(values, members),
        last_message=last,
        last_seq=int(values[6]),
        unread=int(values[7]),
    )


def message_row(m: StoredMessage) -> tuple[Any, ...]:
    return (
        m.id,
        m.room_id,
        m.seq,
        m.sender_id,
        m.cid,
        m.text,
        m.created_at,
        m.kind,
        m.meta,
        m.reply_to,
        m.edited_at,
        m.deleted_at,
        m.expires_at,
    )


def room_tips(messages: Iterable[StoredMessage]) -> dict[str, tuple[int, int]]:
    """room_id -> (highest seq, newest created_at) within a batch.

    insert_messages writes these into ``rooms`` in the same transaction, which
    keeps list_rooms and last_seq a single indexed lookup.
    """
    tips: dict[str, tuple[int, int]] = {}
    for m in messages:
        seq, at = tips.get(m.room_id, (0, 0))
        tips[m.room_id] = (max(seq, m.seq), max(at, m.created_at))
    return tips


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Slices of at most ``size``: SQLite caps bound parameters per statement."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
