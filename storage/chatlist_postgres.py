"""``ChatListStore`` on PostgreSQL, through the main store's pool.

Read-modify-write of one user's settings runs under a transaction-scoped
advisory lock on the user (``pg_advisory_xact_lock``): two devices pinning
different chats at once are serialised, so the pin cap holds at read
committed without a serialisation retry loop.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]

from .base import RoomMember, RoomSummary, StoredMessage
from .chatlist import (
    ChatSettings,
    PinLimitReached,
    SettingsChange,
    StarredMessage,
    apply_change,
)
from .chatlist_sqlite import SUMMARY_WIDTH, settings_from
from .postgres import PostgresStore
from .schema import MESSAGE_COLUMNS, ROOM_COLUMNS, prefixed, summary_from_row

_SETTINGS_COLUMNS = "muted_until, pinned_at, archived_at, marked_unread, notify, updated_at"
_LOCK_USER = "SELECT pg_advisory_xact_lock(hashtext('chat_settings:' || $1))"

_LIST_CHATS = f"""
SELECT {prefixed("r", ROOM_COLUMNS)}, r.direct_key, r.last_seq,
       (SELECT count(*) FROM messages u
         WHERE u.room_id = r.id AND u.seq > me.read_seq AND u.sender_id <> me.user_id
           AND u.deleted_at IS NULL),
       {prefixed("m", MESSAGE_COLUMNS)},
       {prefixed("s", _SETTINGS_COLUMNS)}, r.last_message_at
FROM room_members me
JOIN rooms r ON r.id = me.room_id
LEFT JOIN messages m ON m.room_id = r.id AND m.seq = r.last_seq
LEFT JOIN chat_settings s ON s.user_id = me.user_id AND s.room_id = me.room_id
WHERE me.user_id = $1
  AND COALESCE(s.archived_at IS NOT NULL
       AND (COALESCE(r.last_message_at, 0) <= s.archived_at
            OR COALESCE(s.muted_until, 0) > $2), false) = $3
ORDER BY s.pinned_at IS NULL, s.pinned_at DESC,
         COALESCE(r.last_message_at, r.created_at) DESC, r.id
LIMIT $4 OFFSET $5
"""

_STARRED = f"""
SELECT st.starred_at, {prefixed("m", MESSAGE_COLUMNS)}
FROM starred_messages st
JOIN room_members me ON me.room_id = st.room_id AND me.user_id = st.user_id
JOIN messages m ON m.room_id = st.room_id AND m.seq = st.seq
WHERE st.user_id = $1 AND m.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM message_hidden h
                   WHERE h.user_id = st.user_id AND h.room_id = st.room_id AND h.seq = st.seq)
  AND (st.starred_at, st.room_id, st.seq) < ($2, $3, $4)
ORDER BY st.starred_at DESC, st.room_id DESC, st.seq DESC
LIMIT $5
"""


async def _load(c: asyncpg.Connection, user_id: str, room_id: str) -> ChatSettings:
    row = await c.fetchrow(
        f"SELECT {prefixed('s', _SETTINGS_COLUMNS)}, r.last_message_at FROM rooms r"
        " LEFT JOIN chat_settings s ON s.room_id = r.id AND s.user_id = $1"
        " WHERE r.id = $2",
        user_id,
        room_id,
    )
    if row is None:
        return ChatSettings(room_id)
    return settings_from(room_id, tuple(row)[:6], row[6])


class PostgresChatListStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool = store._pool

    async def get(self, user_id: str, room_id: str) -> ChatSettings:
        async def run(c: asyncpg.Connection) -> ChatSettings:
            return await _load(c, user_id, room_id)

        return await self._store._in_transaction(run, readonly=True)

    async def update(
        self, user_id: str, room_id: str, change: SettingsChange, now: int, max_pinned: int
    ) -> ChatSettings:
        async def run(c: asyncpg.Connection) -> ChatSettings:
            await c.execute(_LOCK_USER, user_id)
            current = await _load(c, user_id, room_id)
            newest, pinned = await c.fetchrow(
                "SELECT max(s.pinned_at), count(s.pinned_at) FROM chat_settings s"
                " JOIN room_members me ON me.room_id = s.room_id AND me.user_id = s.user_id"
                " WHERE s.user_id = $1 AND s.room_id <> $2",
                user_id,
                room_id,
            )
            new = apply_change(current, change, now, max(now, (newest or 0) + 1))
            if new.pinned_at is not None and current.pinned_at is None:
                if pinned >= max_pinned:
                    raise PinLimitReached(max_pinned)
            await c.execute(
                f"INSERT INTO chat_settings (user_id, room_id, {_SETTINGS_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (user_id, room_id) DO UPDATE SET"
                " muted_until = excluded.muted_until, pinned_at = excluded.pinned_at,"
                " archived_at = excluded.archived_at, marked_unread = excluded.marked_unread,"
                " notify = excluded.notify, updated_at = excluded.updated_at",
                user_id,
                room_id,
                new.muted_until,
                new.pinned_at,
                new.archived_at,
                new.marked_unread,
                new.notify,
                new.updated_at,
            )
            return new

        return await self._store._in_transaction(run)

    async def clear_unread(self, user_id: str, room_id: str, now: int) -> ChatSettings | None:
        # Every read receipt asks: one plain read first, so the common case
        # (not marked) takes no transaction and no lock.
        marked = await self._store._run(
            self._pool.fetchval,
            "SELECT 1 FROM chat_settings WHERE user_id = $1 AND room_id = $2 AND marked_unread",
            user_id,
            room_id,
        )
        if marked is None:
            return None

        async def run(c: asyncpg.Connection) -> ChatSettings | None:
            await c.execute(_LOCK_USER, user_id)
            status = await c.execute(
                "UPDATE chat_settings SET marked_unread = false, updated_at = $3"
                " WHERE user_id = $1 AND room_id = $2 AND marked_unread",
                user_id,
                room_id,
                now,
            )
            if status.endswith(" 0"):
                return None
            return await _load(c, user_id, room_id)

        return await self._store._in_transaction(run)

    async def list_chats(
        self, user_id: str, *, archived: bool, now: int, limit: int, offset: int
    ) -> list[tuple[RoomSummary, ChatSettings]]:
        if limit <= 0:
            return []

        async def run(c: asyncpg.Connection) -> list[tuple[RoomSummary, ChatSettings]]:
            rows = await c.fetch(_LIST_CHATS, user_id, now, archived, limit, max(offset, 0))
            members: dict[str, list[RoomMember]] = {r[0]: [] for r in rows}
            for room_id, *member in await c.fetch(
                "SELECT room_id, user_id, role, read_seq FROM room_members"
                " WHERE room_id = ANY($1::text[]) ORDER BY joined_at, user_id",
                list(members),
            ):
                members[room_id].append(RoomMember(*member))
            w = SUMMARY_WIDTH
            out = []
            for r in rows:
                row = tuple(r)
                out.append(
                    (
                        summary_from_row(row[:w], tuple(members[row[0]])),
                        settings_from(row[0], row[w : w + 6], row[w + 6]),
                    )
                )
            return out

        return await self._store._in_transaction(run, readonly=True)

    async def star(self, user_id: str, room_id: str, seq: int, at: int) -> int:
        stored: Any = await self._store._run(
            self._pool.fetchval,
            "INSERT INTO starred_messages AS st (user_id, room_id, seq, starred_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, room_id, seq)"
            " DO UPDATE SET starred_at = st.starred_at RETURNING starred_at",
            user_id,
            room_id,
            seq,
            at,
        )
        return int(stored)

    async def unstar(self, user_id: str, room_id: str, seq: int) -> bool:
        status = await self._store._run(
            self._pool.execute,
            "DELETE FROM starred_messages WHERE user_id = $1 AND room_id = $2 AND seq = $3",
            user_id,
            room_id,
            seq,
        )
        return not status.endswith(" 0")

    async def starred(
        self, user_id: str, before: tuple[int, str, int], limit: int
    ) -> list[StarredMessage]:
        if limit <= 0:
            return []
        rows = await self._store._run(self._pool.fetch, _STARRED, user_id, *before, limit)
        return [StarredMessage(int(r[0]), StoredMessage(*tuple(r)[1:])) for r in rows]
