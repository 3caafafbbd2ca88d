"""Per-user chat settings and starred messages (issue 18, items 1 and 2).

``chatlist_store(store)`` picks the backend twin (``chatlist_sqlite`` /
``chatlist_postgres``), which runs on the main store's connections.

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
  cannot make a sixth pin. ``pinned_at`` is unique per user (the store bumps
  it past the newest pin), so the order is total: newest pin first.
  Pinning unarchives; archiving unpins (an archived chat is not on top).
- Starred messages list newest star first; a message deleted for everyone,
  hidden by the user ("delete for me") or in a room the user left drops out
  of the list (filtered on read, so no write on the delete path).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol

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


class ChatListStore(Protocol):
    async def get(self, user_id: str, room_id: str) -> ChatSettings:
        """The user's settings of the room (the defaults when never changed)."""

    async def update(
        self, user_id: str, room_id: str, change: SettingsChange, now: int, max_pinned: int
    ) -> ChatSettings:
        """Apply ``change`` in one transaction; raises ``PinLimitReached``."""

    async def clear_unread(self, user_id: str, room_id: str, now: int) -> ChatSettings | None:
        """Clear the marked-unread flag; the new settings, or None when it was not set."""

    async def list_chats(
        self, user_id: str, *, archived: bool, now: int, limit: int, offset: int
    ) -> list[tuple[RoomSummary, ChatSettings]]:
        """(``RoomSummary``, settings) of the user's rooms in (or out of) the
        archive at ``now``: pinned first (newest pin first), then by activity."""

    async def star(self, user_id: str, room_id: str, seq: int, at: int) -> int:
        """Star (idempotent); returns the stored starred_at (the first star's)."""

    async def unstar(self, user_id: str, room_id: str, seq: int) -> bool: ...

    async def starred(
        self, user_id: str, before: tuple[int, str, int], limit: int
    ) -> list[StarredMessage]:
        """Visible starred messages strictly before the cursor, newest star first."""


def chatlist_store(store: Store) -> ChatListStore:
    if store.backend == "sqlite":
        from .chatlist_sqlite import SqliteChatListStore

        return SqliteChatListStore(store)  # type: ignore[arg-type]
    from .chatlist_postgres import PostgresChatListStore

    return PostgresChatListStore(store)  # type: ignore[arg-type]
