"""The ``Store`` interface every backend implements, and its record types.

Errors (``storage.errors``)::

    StoreError                  storage failed; callers answer "unavailable"
    ├── NotFound
    ├── Conflict                a unique constraint (email, username, (room, seq), ...)
    └── MigrationError

Identifiers are text chosen by the application (``new_id()``), so both
backends and every node agree on them without a round trip. Times are integer
milliseconds since the Unix epoch.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from storage.sql.database import Database


def new_id(prefix: str = "") -> str:
    """A random 128-bit id in URL-safe text, optionally prefixed (``u_``, ``r_``...)."""
    return prefix + secrets.token_hex(16)


def new_time_id(prefix: str = "") -> str:
    """An id that sorts by creation time: 48-bit ms timestamp, then 80 random bits.

    Rows keyed by it land at the right edge of their index instead of on a
    random page, which is what makes batched inserts cheap on SQLite.
    """
    return f"{prefix}{now_ms():012x}{secrets.token_hex(10)}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class User:
    id: str
    # None for accounts made by phone or Google sign-in until they add one
    # (migration 0003): no email, no username until the profile is complete,
    # no password until one is set.
    email: str | None
    username: str | None
    display_name: str
    password_hash: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class RoomMember:
    user_id: str
    role: str  # "owner" | "admin" | "member"
    read_seq: int = 0


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    kind: str  # "direct" | "group"
    name: str
    created_by: str
    created_at: int
    members: tuple[RoomMember, ...] = ()
    # For direct rooms: the sorted pair "a:b", unique, so a pair has one room.
    direct_key: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    room_id: str
    seq: int
    sender_id: str
    cid: str
    text: str
    created_at: int
    kind: str = "text"
    # Rich messaging (migration 0005): kind-specific JSON, the seq replied
    # to, and the times of the last edit and of delete-for-everyone.
    meta: str | None = None
    reply_to: int | None = None
    edited_at: int | None = None
    deleted_at: int | None = None
    # Disappearing messages (migration 0012): erased for everyone at this time.
    expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """One row of "my rooms": the room, its last message and my unread count."""

    room: Room
    last_message: StoredMessage | None
    last_seq: int
    unread: int


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: str
    user_id: str
    family_id: str
    device: str
    created_at: int
    expires_at: int
    used_at: int | None = None
    revoked_at: int | None = None


@dataclass(slots=True)
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


class Store(Protocol):
    """Everything the node needs from a database. All methods are trio-async."""

    backend: str  # "sqlite" | "postgres"
    # Domain stores (groups, billing, ...) run their statements through it.
    db: Database

    async def migrate(self) -> MigrationReport: ...
    async def ping(self) -> None: ...
    async def aclose(self) -> None: ...

    # users
    async def create_user(self, user: User) -> None:
        """Raises Conflict(field) if the email or username (case-insensitive) is taken."""

    async def get_user(self, user_id: str) -> User | None: ...
    async def get_user_by_login(self, login: str) -> User | None:
        """Look up by email or username, case-insensitively."""

    async def update_user(self, user_id: str, *, display_name: str) -> User | None: ...
    async def existing_user_ids(self, user_ids: Sequence[str]) -> set[str]: ...

    # refresh tokens (stored hashed; rotation with family revocation)
    async def add_refresh_token(self, token: RefreshToken) -> None: ...
    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None: ...
    async def use_refresh_token(self, token_hash: str, at: int) -> bool:
        """Mark used if unused and unrevoked, atomically; False if it was not."""

    async def revoke_token_family(self, family_id: str, at: int) -> None: ...

    # rooms
    async def create_room(self, room: Room) -> Room:
        """Insert room and members. For a direct room whose direct_key exists,
        returns the existing room instead (idempotent)."""

    async def get_room(self, room_id: str) -> Room | None: ...
    async def list_rooms(self, user_id: str, *, limit: int, offset: int) -> list[RoomSummary]:
        """Rooms of the user, most recent activity first."""

    async def set_read_seq(self, room_id: str, user_id: str, seq: int) -> int:
        """Advance (never move back) the read cursor; returns the stored value."""

    # messages
    async def insert_messages(
        self, messages: Sequence[StoredMessage], fences: Mapping[str, int] | None = None
    ) -> None:
        """All or nothing, in one transaction. Raises Conflict on a duplicate
        (room, seq) or (room, sender, cid), and ``Fenced`` if a room of
        ``fences`` (room -> lease token) is no longer held with that token."""

    async def last_seq(self, room_id: str) -> int:
        """Highest stored seq of the room, 0 when empty."""

    async def find_by_cids(
        self, room_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredMessage]:
        """Messages of the room whose (sender_id, cid) is in keys."""

    async def messages_after(self, room_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        """Ascending seq, seq > after_seq."""

    async def messages_before(
        self, room_id: str, before_seq: int, limit: int
    ) -> list[StoredMessage]:
        """The ``limit`` messages just below before_seq, returned in ascending seq."""
