"""``ChatListStore`` on SQLite, through the main store's connections."""

from __future__ import annotations

import sqlite3
from typing import Any

from .base import RoomMember, RoomSummary, StoredMessage
from .chatlist import (
    ChatSettings,
    PinLimitReached,
    SettingsChange,
    StarredMessage,
    apply_change,
)
from .schema import MESSAGE_COLUMNS, ROOM_COLUMNS, chunks, prefixed, summary_from_row
from .sqlite import SqliteStore, _transaction

_SETTINGS_COLUMNS = "muted_until, pinned_at, archived_at, marked_unread, notify, updated_at"
# ROOM_COLUMNS, direct_key, last_seq, unread, MESSAGE_COLUMNS: what summary_from_row reads.
SUMMARY_WIDTH = len(ROOM_COLUMNS.split(",")) + 3 + len(MESSAGE_COLUMNS.split(","))

# An archived chat is back in the main list once the room has a message after
# the archive time, unless it is muted now (storage.chatlist's rule, in SQL).
_LIST_CHATS = f"""
SELECT {prefixed("r", ROOM_COLUMNS)},
       r.direct_key, r.last_seq,
       (SELECT COUNT(*) FROM messages u
         WHERE u.room_id = r.id AND u.seq > me.read_seq AND u.sender_id <> me.user_id
           AND u.deleted_at IS NULL),
       {prefixed("m", MESSAGE_COLUMNS)},
       {prefixed("s", _SETTINGS_COLUMNS)}, r.last_message_at
FROM room_members me
JOIN rooms r ON r.id = me.room_id
LEFT JOIN messages m ON m.room_id = r.id AND m.seq = r.last_seq
LEFT JOIN chat_settings s ON s.user_id = me.user_id AND s.room_id = me.room_id
WHERE me.user_id = :user
  AND (s.archived_at IS NOT NULL
       AND (COALESCE(r.last_message_at, 0) <= s.archived_at
            OR COALESCE(s.muted_until, 0) > :now)) = :archived
ORDER BY s.pinned_at IS NULL, s.pinned_at DESC,
         COALESCE(r.last_message_at, r.created_at) DESC, r.id
LIMIT :limit OFFSET :offset
"""

_STARRED = f"""
SELECT st.starred_at, {prefixed("m", MESSAGE_COLUMNS)}
FROM starred_messages st
JOIN room_members me ON me.room_id = st.room_id AND me.user_id = st.user_id
JOIN messages m ON m.room_id = st.room_id AND m.seq = st.seq
WHERE st.user_id = ? AND m.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM message_hidden h
                   WHERE h.user_id = st.user_id AND h.room_id = st.room_id AND h.seq = st.seq)
  AND (st.starred_at, st.room_id, st.seq) < (?, ?, ?)
ORDER BY st.starred_at DESC, st.room_id DESC, st.seq DESC
LIMIT ?
"""

_CHUNK = 500


def settings_from(room_id: str, row: Any, last_message_at: int | None) -> ChatSettings:
    """``row`` is _SETTINGS_COLUMNS, all NULL when the user never changed anything."""
    if row is None or row[5] is None:
        return ChatSettings(room_id, last_message_at=last_message_at)
    muted_until, pinned_at, archived_at, marked_unread, notify, updated_at = row
    return ChatSettings(
        room_id,
        muted_until=muted_until,
        pinned_at=pinned_at,
        archived_at=archived_at,
        marked_unread=bool(marked_unread),
        notify=notify,
        updated_at=updated_at,
        last_message_at=last_message_at,
    )


def _load(c: sqlite3.Connection, user_id: str, room_id: str) -> ChatSettings:
    row = c.execute(
        f"SELECT {prefixed('s', _SETTINGS_COLUMNS)}, r.last_message_at FROM rooms r"
        " LEFT JOIN chat_settings s ON s.room_id = r.id AND s.user_id = ?"
        " WHERE r.id = ?",
        (user_id, room_id),
    ).fetchone()
    if row is None:
        return ChatSettings(room_id)
    return settings_from(room_id, row[:6], row[6])


def _save(c: sqlite3.Connection, user_id: str, s: ChatSettings) -> None:
    c.execute(
        f"INSERT INTO chat_settings (user_id, room_id, {_SETTINGS_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, room_id) DO UPDATE SET"
        " muted_until = excluded.muted_until, pinned_at = excluded.pinned_at,"
        " archived_at = excluded.archived_at, marked_unread = excluded.marked_unread,"
        " notify = excluded.notify, updated_at = excluded.updated_at",
        (
            user_id,
            s.room_id,
            s.muted_until,
            s.pinned_at,
            s.archived_at,
            int(s.marked_unread),
            s.notify,
            s.updated_at,
        ),
    )


class SqliteChatListStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def get(self, user_id: str, room_id: str) -> ChatSettings:
        return await self._store._read(lambda c: _load(c, user_id, room_id))

    async def update(
        self, user_id: str, room_id: str, change: SettingsChange, now: int, max_pinned: int
    ) -> ChatSettings:
        def run(c: sqlite3.Connection) -> ChatSettings:
            # IMMEDIATE: the pin count and the write are one serialised step.
            with _transaction(c):
                current = _load(c, user_id, room_id)
                newest, pinned = c.execute(
                    "SELECT MAX(s.pinned_at), COUNT(s.pinned_at) FROM chat_settings s"
                    " JOIN room_members me ON me.room_id = s.room_id AND me.user_id = s.user_id"
                    " WHERE s.user_id = ? AND s.room_id <> ?",
                    (user_id, room_id),
                ).fetchone()
                new = apply_change(current, change, now, max(now, (newest or 0) + 1))
                if new.pinned_at is not None and current.pinned_at is None:
                    if pinned >= max_pinned:
                        raise PinLimitReached(max_pinned)
                _save(c, user_id, new)
                return new

        return await self._store._write(run)

    async def clear_unread(self, user_id: str, room_id: str, now: int) -> ChatSettings | None:
        # Every read receipt asks: look on the reader first, so the common
        # case (not marked) never queues on the write lock.
        marked = await self._store._read(
            lambda c: c.execute(
                "SELECT 1 FROM chat_settings"
                " WHERE user_id = ? AND room_id = ? AND marked_unread = 1",
                (user_id, room_id),
            ).fetchone()
        )
        if marked is None:
            return None

        def run(c: sqlite3.Connection) -> ChatSettings | None:
            with _transaction(c):
                cur = c.execute(
                    "UPDATE chat_settings SET marked_unread = 0, updated_at = ?"
                    " WHERE user_id = ? AND room_id = ? AND marked_unread = 1",
                    (now, user_id, room_id),
                )
                return _load(c, user_id, room_id) if cur.rowcount else None

        return await self._store._write(run)

    async def list_chats(
        self, user_id: str, *, archived: bool, now: int, limit: int, offset: int
    ) -> list[tuple[RoomSummary, ChatSettings]]:
        if limit <= 0:
            return []
        params = {
            "user": user_id,
            "now": now,
            "archived": int(archived),
            "limit": limit,
            "offset": max(offset, 0),
        }

        def run(c: sqlite3.Connection) -> list[tuple[RoomSummary, ChatSettings]]:
            with _transaction(c, "DEFERRED"):
                rows = c.execute(_LIST_CHATS, params).fetchall()
                members: dict[str, list[RoomMember]] = {r[0]: [] for r in rows}
                for part in chunks(list(members), _CHUNK):
                    marks = ", ".join("?" * len(part))
                    for room_id, *member in c.execute(
                        f"SELECT room_id, user_id, role, read_seq FROM room_members"
                        f" WHERE room_id IN ({marks}) ORDER BY joined_at, user_id",
                        part,
                    ):
                        members[room_id].append(RoomMember(*member))
            w = SUMMARY_WIDTH
            return [
                (
                    summary_from_row(row[:w], tuple(members[row[0]])),
                    settings_from(row[0], row[w : w + 6], row[w + 6]),
                )
                for row in rows
            ]

        return await self._store._read(run)

    async def star(self, user_id: str, room_id: str, seq: int, at: int) -> int:
        def run(c: sqlite3.Connection) -> int:
            row = c.execute(
                "INSERT INTO starred_messages (user_id, room_id, seq, starred_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, room_id, seq)"
                " DO UPDATE SET starred_at = starred_at RETURNING starred_at",
                (user_id, room_id, seq, at),
            ).fetchone()
            return int(row[0])

        return await self._store._write(run)

    async def unstar(self, user_id: str, room_id: str, seq: int) -> bool:
        cur = await self._store._write(
            lambda c: c.execute(
                "DELETE FROM starred_messages WHERE user_id = ? AND room_id = ? AND seq = ?",
                (user_id, room_id, seq),
            )
        )
        return bool(cur.rowcount)

    async def starred(
        self, user_id: str, before: tuple[int, str, int], limit: int
    ) -> list[StarredMessage]:
        if limit <= 0:
            return []
        rows = await self._store._read(
            lambda c: c.execute(_STARRED, (user_id, *before, limit)).fetchall()
        )
        return [StarredMessage(int(r[0]), StoredMessage(*r[1:])) for r in rows]
