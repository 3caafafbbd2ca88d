"""Per-user chat settings and starred messages (issue 18, items 1 and 2).

Written once for both databases on the main store's ``Database``.

Rules:
- Settings belong to a (user, room) pair and are the same on every device.
  No row means the defaults; a row is written on the first change.
- Everything time-dependent is evaluated against a ``now`` the caller passes
  (the node's one clock), never read here: mute expiry and the archive rule
  are testable on a controlled clock.
- Mute: muted while ``now < muted_until``; "always" is ``MUTE_FOREVER``. A
  muted chat still counts unread; the push work must send nothing for it.
- Archive is lazy: a chat archived at ``archived_at`` is back in the main
  list as soon as the room has a message after that time, unless the chat is
  muted now. Nothing on the message hot path writes for it.
- Pinning is capped per user (``max_pinned``, counted over rooms the user is
  still in) inside the write transaction, so two devices pinning at once
  cannot make a sixth pin: SQLite's write transaction holds the database
  write lock; on PostgreSQL the transaction first takes an advisory lock on
  the user (``Dialect.xact_lock``), which serialises the read-modify-write
  at read committed without a serialisation retry loop. ``pinned_at`` is
  unique per user (the store bumps it past the newest pin), so the order is
  total: newest pin first.
  Pinning unarchives; archiving unpins (an archived chat is not on top).
- Starred messages list newest star first; a message deleted for everyone,
  hidden by the user ("delete for me") or in a room the user left drops out
  of the list (filtered on read, so no write on the delete path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from storage.sql.database import Database
from storage.sql.dialect import Dialect
from storage.sql.schema import MESSAGE_COLUMNS, ROOM_COLUMNS, prefixed, summary_from_row
from storage.sql.statements import Execute, Fetch, FetchOne, Op, Row
from storage.sql.store import members_of

from .base import RoomSummary, Store, StoredMessage

MUTE_FOREVER = 2**62  # far future; fits SQLite INTEGER and PostgreSQL bigint
NOTIFY_LEVELS = ("all", "mentions", "none")
MAX_PINNED = 5
# Past any real starred_at: the cursor of the first page of starred messages.
FIRST_PAGE = (2**62, "", 0)


class Keep(Enum):
    """A field of a ``SettingsChange`` left as it is."""

    KEEP = 0


KEEP = Keep.KEEP


class PinLimitReached(Exception):
    """The user already has ``max_pinned`` pinned chats; nothing was written."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} chats can be pinned")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ChatSettings:
    room_id: str
    muted_until: int | None = None
    pinned_at: int | None = None
    archived_at: int | None = None
    marked_unread: bool = False
    notify: str = "all"
    updated_at: int = 0
    # The room's, not the user's: the newest message time, for the archive rule.
    last_message_at: int | None = None

    def muted(self, now: int) -> bool:
        return self.muted_until is not None and now < self.muted_until

    def archived(self, now: int) -> bool:
        if self.archived_at is None:
            return False
        if self.muted(now):
            return True
        return (self.last_message_at or 0) <= self.archived_at


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """What one request changes; ``KEEP`` / None leave a field as it is."""

    muted_until: int | None | Keep = KEEP  # None: unmute
    pinned: bool | None = None
    archived: bool | None = None
    marked_unread: bool | None = None
    notify: str | None = None


def apply_change(
    current: ChatSettings, change: SettingsChange, now: int, next_pin: int
) -> ChatSettings:
    """The settings after ``change`` at ``now``; ``next_pin`` is the pinned_at a new pin gets."""
    new = current
    if not isinstance(change.muted_until, Keep):
        new = replace(new, muted_until=change.muted_until)
    if change.archived is True:
        new = replace(new, archived_at=now, pinned_at=None)
    elif change.archived is False:
        new = replace(new, archived_at=None)
    if change.pinned is True and new.pinned_at is None:
        new = replace(new, pinned_at=next_pin, archived_at=None)
    elif change.pinned is False:
        new = replace(new, pinned_at=None)
    if change.marked_unread is not None:
        new = replace(new, marked_unread=change.marked_unread)
    if change.notify is not None:
        new = replace(new, notify=change.notify)
    return replace(new, updated_at=now)


@dataclass(frozen=True, slots=True)
class StarredMessage:
    starred_at: int
    message: StoredMessage

    @property
    def cursor(self) -> tuple[int, str, int]:
        return (self.starred_at, self.message.room_id, self.message.seq)


_SETTINGS_COLUMNS = "muted_until, pinned_at, archived_at, marked_unread, notify, updated_at"
# ROOM_COLUMNS, direct_key, last_seq, unread, MESSAGE_COLUMNS: what summary_from_row reads.
_SUMMARY_WIDTH = len(ROOM_COLUMNS.split(",")) + 3 + len(MESSAGE_COLUMNS.split(","))
# First key of the two-key advisory lock (``Dialect.xact_lock``): keeps these
# locks apart from other domains' (the number of the chat_settings migration).
_LOCK_CLASS = 8011

# An archived chat is back in the main list once the room has a message after
# the archive time, unless it is muted now (the rule of ``ChatSettings.archived``,
# in SQL). COALESCE: no settings row means not archived, never NULL.
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
WHERE me.user_id = ?
  AND COALESCE(s.archived_at IS NOT NULL
       AND (COALESCE(r.last_message_at, 0) <= s.archived_at
            OR COALESCE(s.muted_until, 0) > ?), FALSE) = ?
ORDER BY s.pinned_at IS NULL, s.pinned_at DESC,
         COALESCE(r.last_message_at, r.created_at) DESC, r.id
LIMIT ? OFFSET ?
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

_LOAD = (
    f"SELECT {prefixed('s', _SETTINGS_COLUMNS)}, r.last_message_at FROM rooms r"
    " LEFT JOIN chat_settings s ON s.room_id = r.id AND s.user_id = ?"
    " WHERE r.id = ?"
)


def _settings_from(room_id: str, row: Sequence[Any], last_message_at: int | None) -> ChatSettings:
    """``row`` is _SETTINGS_COLUMNS, all NULL when the user never changed anything."""
    if row[5] is None:
        return ChatSettings(room_id, last_message_at=last_message_at)
    muted_until, pinned_at, archived_at, marked_unread, notify, updated_at = row
    return ChatSettings(
        room_id,
        muted_until=muted_until,
        pinned_at=pinned_at,
        archived_at=archived_at,
        marked_unread=bool(marked_unread),  # INTEGER on SQLite, boolean on PostgreSQL
        notify=notify,
        updated_at=updated_at,
        last_message_at=last_message_at,
    )


def _loaded(room_id: str, row: Row | None) -> ChatSettings:
    if row is None:
        return ChatSettings(room_id)
    values = tuple(row)
    return _settings_from(room_id, values[:6], values[6])


def _lock_user(d: Dialect, user_id: str) -> Op[None]:
    lock = d.xact_lock()
    if lock is not None:
        yield Execute(lock, (_LOCK_CLASS, user_id))


def _update(
    d: Dialect, user_id: str, room_id: str, change: SettingsChange, now: int, max_pinned: int
) -> Op[ChatSettings]:
    # The pin count and the write are one serialised step (see the rules above).
    yield from _lock_user(d, user_id)
    row = yield FetchOne(_LOAD, (user_id, room_id))
    current = _loaded(room_id, row)
    newest, pinned = yield FetchOne(
        "SELECT MAX(s.pinned_at), COUNT(s.pinned_at) FROM chat_settings s"
        " JOIN room_members me ON me.room_id = s.room_id AND me.user_id = s.user_id"
        " WHERE s.user_id = ? AND s.room_id <> ?",
        (user_id, room_id),
    )
    new = apply_change(current, change, now, max(now, (newest or 0) + 1))
    if new.pinned_at is not None and current.pinned_at is None and pinned >= max_pinned:
        raise PinLimitReached(max_pinned)  # the transaction rolls back: nothing written
    yield Execute(
        f"INSERT INTO chat_settings (user_id, room_id, {_SETTINGS_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, room_id) DO UPDATE SET"
        " muted_until = excluded.muted_until, pinned_at = excluded.pinned_at,"
        " archived_at = excluded.archived_at, marked_unread = excluded.marked_unread,"
        " notify = excluded.notify, updated_at = excluded.updated_at",
        (
            user_id,
            room_id,
            new.muted_until,
            new.pinned_at,
            new.archived_at,
            new.marked_unread,
            new.notify,
            new.updated_at,
        ),
    )
    return new


def _clear_unread(d: Dialect, user_id: str, room_id: str, now: int) -> Op[ChatSettings | None]:
    yield from _lock_user(d, user_id)
    cleared = yield Execute(
        "UPDATE chat_settings SET marked_unread = FALSE, updated_at = ?"
        " WHERE user_id = ? AND room_id = ? AND marked_unread = TRUE",
        (now, user_id, room_id),
    )
    if not cleared:
        return None
    row = yield FetchOne(_LOAD, (user_id, room_id))
    return _loaded(room_id, row)


def _list_chats(
    d: Dialect, user_id: str, archived: bool, now: int, limit: int, offset: int
) -> Op[list[tuple[RoomSummary, ChatSettings]]]:
    listed = yield Fetch(_LIST_CHATS, (user_id, now, archived, limit, offset))
    rows = [tuple(r) for r in listed]
    members = yield from members_of(d, [r[0] for r in rows])
    w = _SUMMARY_WIDTH
    return [
        (
            summary_from_row(row[:w], members[row[0]]),
            _settings_from(row[0], row[w : w + 6], row[w + 6]),
        )
        for row in rows
    ]


class ChatListStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: str, room_id: str) -> ChatSettings:
        """The user's settings of the room (the defaults when never changed)."""
        return _loaded(room_id, await self._db.fetchone(_LOAD, (user_id, room_id)))

    async def update(
        self, user_id: str, room_id: str, change: SettingsChange, now: int, max_pinned: int
    ) -> ChatSettings:
        """Apply ``change`` in one transaction; raises ``PinLimitReached``."""
        d = self._db.dialect
        return await self._db.write(_update(d, user_id, room_id, change, now, max_pinned))

    async def clear_unread(self, user_id: str, room_id: str, now: int) -> ChatSettings | None:
        """Clear the marked-unread flag; the new settings, or None when it was not set."""
        # Every read receipt asks: one plain read first, so the common case
        # (not marked) takes no write transaction and no lock.
        marked = await self._db.fetchval(
            "SELECT 1 FROM chat_settings"
            " WHERE user_id = ? AND room_id = ? AND marked_unread = TRUE",
            (user_id, room_id),
        )
        if marked is None:
            return None
        return await self._db.write(_clear_unread(self._db.dialect, user_id, room_id, now))

    async def list_chats(
        self, user_id: str, *, archived: bool, now: int, limit: int, offset: int
    ) -> list[tuple[RoomSummary, ChatSettings]]:
        """(``RoomSummary``, settings) of the user's rooms in (or out of) the
        archive at ``now``: pinned first (newest pin first), then by activity."""
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        d = self._db.dialect
        return await self._db.read(_list_chats(d, user_id, archived, now, limit, max(offset, 0)))

    async def star(self, user_id: str, room_id: str, seq: int, at: int) -> int:
        """Star (idempotent); returns the stored starred_at (the first star's)."""
        # DO UPDATE to itself, not DO NOTHING: RETURNING then hands back the
        # row already there.
        stored = await self._db.fetchval(
            "INSERT INTO starred_messages AS st (user_id, room_id, seq, starred_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, room_id, seq)"
            " DO UPDATE SET starred_at = st.starred_at RETURNING starred_at",
            (user_id, room_id, seq, at),
            write=True,
        )
        return int(stored)

    async def unstar(self, user_id: str, room_id: str, seq: int) -> bool:
        deleted = await self._db.execute(
            "DELETE FROM starred_messages WHERE user_id = ? AND room_id = ? AND seq = ?",
            (user_id, room_id, seq),
        )
        return deleted > 0

    async def starred(
        self, user_id: str, before: tuple[int, str, int], limit: int
    ) -> list[StarredMessage]:
        """Visible starred messages strictly before the cursor, newest star first."""
        if limit <= 0:
            return []
        rows = await self._db.fetch(_STARRED, (user_id, *before, limit))
        return [StarredMessage(int(r[0]), StoredMessage(*tuple(r)[1:])) for r in rows]


def chatlist_store(store: Store) -> ChatListStore:
    return ChatListStore(store.db)
