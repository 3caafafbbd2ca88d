"""``PostgresStore``: the scale-out ``Store`` on asyncpg.

Rules:
- asyncpg is asyncio code; every call crosses into it through
  ``storage.asyncio_bridge`` (one asyncio loop hosted in the trio run). The
  trio-facing methods never touch asyncpg objects directly.
- Each method is one asyncio coroutine (one pool checkout); multi-statement
  work runs in one transaction inside it, so a trio cancellation cancels the
  asyncio task and asyncpg rolls the transaction back on release.
- asyncpg errors never escape: unique violations become ``Conflict`` named by
  constraint (the names are fixed in migrations/postgres/0001_init.sql),
  foreign-key violations ``NotFound``, everything else ``StoreError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import trio

from . import migrate
from .asyncio_bridge import AsyncioBridge, open_asyncio_bridge
from .base import (
    MigrationReport,
    RefreshToken,
    Room,
    RoomMember,
    RoomSummary,
    StoredMessage,
    User,
)
from .errors import Conflict, NotFound, StoreError
from .schema import (
    MESSAGE_COLUMNS,
    ROOM_COLUMNS,
    TOKEN_COLUMNS,
    USER_COLUMNS,
    fold,
    prefixed,
    room_from_row,
    summary_from_row,
)

T = TypeVar("T")

_UNIQUE_FIELDS = {
    "users_email_lc_key": "email",
    "users_username_lc_key": "username",
    "users_pkey": "id",
    "messages_room_seq_key": "seq",
    "messages_room_sender_cid_key": "cid",
    "messages_pkey": "id",
    "rooms_pkey": "id",
    "rooms_direct_key_key": "direct_key",
    "room_members_pkey": "member",
    "refresh_tokens_pkey": "token",
}

# Errors that mean "the database failed us" rather than a bug in our code.
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


# One statement, so one implicit transaction and one round trip: the rows go
# in as one array per column (unnest is as fast as executemany's pipeline for big
# batches, and lets the same statement advance each room's tip from what it
# just inserted). GREATEST ignores NULL, so a room's first message sets
# last_message_at.
_INSERT_MESSAGES = f"""
WITH batch AS (
    INSERT INTO messages ({MESSAGE_COLUMNS})
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[],
                         $5::text[], $6::text[], $7::bigint[], $8::text[],
                         $9::text[], $10::bigint[], $11::bigint[], $12::bigint[],
                         $13::bigint[])
    RETURNING room_id, seq, created_at
)
UPDATE rooms r
   SET last_seq = GREATEST(r.last_seq, b.seq),
       last_message_at = GREATEST(r.last_message_at, b.at)
  FROM (SELECT room_id, max(seq) AS seq, max(created_at) AS at
          FROM batch GROUP BY room_id) b
 WHERE r.id = b.room_id
"""

_LIST_ROOMS = f"""
SELECT {prefixed("r", ROOM_COLUMNS)}, r.direct_key, r.last_seq,
       (SELECT count(*) FROM messages u
         WHERE u.room_id = r.id AND u.seq > me.read_seq AND u.sender_id <> me.user_id
           AND u.deleted_at IS NULL),
       {prefixed("m", MESSAGE_COLUMNS)}
FROM room_members me
JOIN rooms r ON r.id = me.room_id
LEFT JOIN messages m ON m.room_id = r.id AND m.seq = r.last_seq
WHERE me.user_id = $1
ORDER BY COALESCE(r.last_message_at, r.created_at) DESC, r.id
LIMIT $2 OFFSET $3
"""


def _user(row: Sequence[Any] | None) -> User | None:
    return None if row is None else User(*row)


async def _load_room(c: asyncpg.Connection, room_id: str) -> Room | None:
    row = await c.fetchrow(f"SELECT {ROOM_COLUMNS}, direct_key FROM rooms WHERE id = $1", room_id)
    if row is None:
        return None
    members = await c.fetch(
        "SELECT user_id, role, read_seq FROM room_members WHERE room_id = $1"
        " ORDER BY joined_at, user_id",
        room_id,
    )
    return room_from_row(row, tuple(RoomMember(*m) for m in members))


class PostgresStore:
    backend = "postgres"

    def __init__(self, bridge: AsyncioBridge, pool: asyncpg.Pool) -> None:
        self._bridge = bridge
        self._pool = pool
        self._closed = False

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._closed:
            raise StoreError("store is closed")
        try:
            return await self._bridge.run(fn, *args)
        except asyncpg.UniqueViolationError as exc:
            name = exc.constraint_name or ""
            raise Conflict(_UNIQUE_FIELDS.get(name, name)) from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"a referenced row does not exist ({exc.constraint_name})") from exc
        except _DATABASE_ERRORS as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    async def _in_transaction(
        self, fn: Callable[[asyncpg.Connection], Awaitable[T]], *, readonly: bool = False
    ) -> T:
        # Reads of several statements (a room and its members) use one
        # snapshot, like SQLite's read transaction, hence repeatable read.
        isolation = "repeatable_read" if readonly else "read_committed"

        async def run() -> T:
            async with (
                self._pool.acquire() as c,
                c.transaction(isolation=isolation, readonly=readonly),
            ):
                return await fn(c)

        return await self._run(run)

    async def migrate(self) -> MigrationReport:
        async def run() -> MigrationReport:
            async with self._pool.acquire() as c:
                return await migrate.migrate_postgres(c)

        report = await self._run(run)
        # Cached prepared statements may describe the pre-migration schema.
        await self._run(self._pool.expire_connections)
        return report

    async def ping(self) -> None:
        await self._run(self._pool.fetchval, "SELECT 1")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def close() -> None:
            import asyncio

            try:
                await asyncio.wait_for(self._pool.close(), timeout=5)
            except TimeoutError:
                # A connection still checked out (a cancelled query that has
                # not unwound yet) must not hold up shutdown.
                self._pool.terminate()

        await self._bridge.run(close)

    # users

    async def create_user(self, user: User) -> None:
        await self._run(
            self._pool.execute,
            "INSERT INTO users (id, email, email_lc, username, username_lc,"
            " display_name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            user.id,
            user.email,
            fold(user.email) if user.email is not None else None,
            user.username,
            fold(user.username) if user.username is not None else None,
            user.display_name,
            user.password_hash,
            user.created_at,
        )

    async def get_user(self, user_id: str) -> User | None:
        row = await self._run(
            self._pool.fetchrow, f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id
        )
        return _user(row)

    async def get_user_by_login(self, login: str) -> User | None:
        # An email match wins should a username ever equal someone's email.
        row = await self._run(
            self._pool.fetchrow,
            f"SELECT {USER_COLUMNS} FROM users WHERE email_lc = $1 OR username_lc = $1"
            " ORDER BY (email_lc = $1) DESC LIMIT 1",
            fold(login),
        )
        return _user(row)

    async def update_user(self, user_id: str, *, display_name: str) -> User | None:
        row = await self._run(
            self._pool.fetchrow,
            f"UPDATE users SET display_name = $2 WHERE id = $1 RETURNING {USER_COLUMNS}",
            user_id,
            display_name,
        )
        return _user(row)

    async def existing_user_ids(self, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        rows = await self._run(
            self._pool.fetch, "SELECT id FROM users WHERE id = ANY($1::text[])", list(user_ids)
        )
        return {r[0] for r in rows}

    # refresh tokens

    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self._run(
            self._pool.execute,
            f"INSERT INTO refresh_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            token.token_hash,
            token.user_id,
            token.family_id,
            token.device,
            token.created_at,
            token.expires_at,
            token.used_at,
            token.revoked_at,
        )

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self._run(
            self._pool.fetchrow,
            f"SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE token_hash = $1",
            token_hash,
        )
        return None if row is None else RefreshToken(*row)

    async def use_refresh_token(self, token_hash: str, at: int) -> bool:
        # One conditional UPDATE is the atomic test-and-set: of two racing
        # refreshes, the second waits on the row lock, re-checks the WHERE
        # against the committed row and matches nothing.
        status = await self._run(
            self._pool.execute,
            "UPDATE refresh_tokens SET used_at = $2"
            " WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL",
            token_hash,
            at,
        )
        return bool(status == "UPDATE 1")

    async def revoke_token_family(self, family_id: str, at: int) -> None:
        await self._run(
            self._pool.execute,
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
            family_id,
            at,
        )

    # rooms

    async def create_room(self, room: Room) -> Room:
        async def run(c: asyncpg.Connection) -> Room:
            # ON CONFLICT waits for a concurrent creator of the same pair and
            # then does nothing; the SELECT after it sees that room committed.
            inserted = await c.fetchval(
                f"INSERT INTO rooms ({ROOM_COLUMNS}, direct_key) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (direct_key) DO NOTHING RETURNING id",
                room.id,
                room.kind,
                room.name,
                room.created_by,
                room.created_at,
                room.direct_key,
            )
            if inserted is None:
                room_id = await c.fetchval(
                    "SELECT id FROM rooms WHERE direct_key = $1", room.direct_key
                )
            else:
                room_id = inserted
                await c.executemany(
                    "INSERT INTO room_members (room_id, user_id, role, read_seq, joined_at)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    [
                        (room.id, m.user_id, m.role, m.read_seq, room.created_at)
                        for m in room.members
                    ],
                )
            stored = await _load_room(c, room_id)
            assert stored is not None  # read inside the transaction that wrote it
            return stored

        return await self._in_transaction(run)

    async def get_room(self, room_id: str) -> Room | None:
        async def run(c: asyncpg.Connection) -> Room | None:
            return await _load_room(c, room_id)

        return await self._in_transaction(run, readonly=True)

    async def list_rooms(self, user_id: str, *, limit: int, offset: int) -> list[RoomSummary]:
        if limit <= 0:
            return []

        async def run(c: asyncpg.Connection) -> list[RoomSummary]:
            rows = await c.fetch(_LIST_ROOMS, user_id, limit, max(offset, 0))
            members: dict[str, list[RoomMember]] = {r[0]: [] for r in rows}
            for room_id, *member in await c.fetch(
                "SELECT room_id, user_id, role, read_seq FROM room_members"
                " WHERE room_id = ANY($1::text[]) ORDER BY joined_at, user_id",
                list(members),
            ):
                members[room_id].append(RoomMember(*member))
            return [summary_from_row(r, tuple(members[r[0]])) for r in rows]

        return await self._in_transaction(run, readonly=True)

    async def set_read_seq(self, room_id: str, user_id: str, seq: int) -> int:
        stored = await self._run(
            self._pool.fetchval,
            "UPDATE room_members SET read_seq = GREATEST(read_seq, $3)"
            " WHERE room_id = $1 AND user_id = $2 RETURNING read_seq",
            room_id,
            user_id,
            seq,
        )
        if stored is None:
            raise NotFound(f"{user_id} is not a member of {room_id}")
        return int(stored)

    # messages

    async def insert_messages(self, messages: Sequence[StoredMessage]) -> None:
        if not messages:
            return
        columns = (
            [m.id for m in messages],
            [m.room_id for m in messages],
            [m.seq for m in messages],
            [m.sender_id for m in messages],
            [m.cid for m in messages],
            [m.text for m in messages],
            [m.created_at for m in messages],
            [m.kind for m in messages],
            [m.meta for m in messages],
            [m.reply_to for m in messages],
            [m.edited_at for m in messages],
            [m.deleted_at for m in messages],
            [m.expires_at for m in messages],
        )
        await self._run(self._pool.execute, _INSERT_MESSAGES, *columns)

    async def last_seq(self, room_id: str) -> int:
        seq = await self._run(
            self._pool.fetchval, "SELECT last_seq FROM rooms WHERE id = $1", room_id
        )
        return 0 if seq is None else int(seq)

    async def find_by_cids(
        self, room_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredMessage]:
        if not keys:
            return {}
        rows = await self._run(
            self._pool.fetch,
            f"SELECT {prefixed('m', MESSAGE_COLUMNS)} FROM messages m"
            " JOIN (SELECT DISTINCT * FROM unnest($2::text[], $3::text[])) AS k(sender_id, cid)"
            "   ON m.sender_id = k.sender_id AND m.cid = k.cid"
            " WHERE m.room_id = $1",
            room_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        found = [StoredMessage(*r) for r in rows]
        return {(m.sender_id, m.cid): m for m in found}

    async def messages_after(self, room_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        if limit <= 0:
            return []
        rows = await self._run(
            self._pool.fetch,
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            room_id,
            after_seq,
            limit,
        )
        return [StoredMessage(*r) for r in rows]

    async def messages_before(
        self, room_id: str, before_seq: int, limit: int
    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        rows = await self._run(
            self._pool.fetch,
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq < $2"
            " ORDER BY seq DESC LIMIT $3",
            room_id,
            before_seq,
            limit,
        )
        return [StoredMessage(*r) for r in reversed(rows)]


# Without a limit, a query on a connection that died silently (no RST) would
# hang forever and, through the writer, every room with it. Migrations set
# their own, longer limit.
COMMAND_TIMEOUT = 60.0


@asynccontextmanager
async def open_postgres_store(
    dsn: str, *, min_size: int = 1, max_size: int = 10
) -> AsyncIterator[PostgresStore]:
    """A pooled store on ``dsn``. Query parameters asyncpg does not know
    (``?search_path=...``) are sent as server settings. Migrations are the
    caller's business (``await store.migrate()``)."""
    async with open_asyncio_bridge() as bridge:
        try:
            pool = await bridge.run(
                asyncpg.create_pool,
                dsn,
                min_size=min_size,
                max_size=max_size,
                command_timeout=COMMAND_TIMEOUT,
            )
        except _DATABASE_ERRORS as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        store = PostgresStore(bridge, pool)
        try:
            yield store
        finally:
            with trio.CancelScope(shield=True):
                await store.aclose()
