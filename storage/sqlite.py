"""``SqliteStore``: the embedded, zero-set-up ``Store`` (stdlib sqlite3, WAL).

Rules:
- Two connections: one for writes, one for reads. WAL lets the reader run
  beside the writer, and sqlite3 connections are not safe for concurrent use,
  so each is driven by at most one thread at a time: every call goes through
  ``trio.to_thread.run_sync`` with a ``CapacityLimiter(1)`` of its own.
- A store method is one thread call; a transaction never spans an ``await``,
  so a trio cancellation can never leave a transaction half open.
  (``to_thread.run_sync`` does not abandon the thread on cancel: the call
  finishes, then the cancellation is delivered.)
- Connections run in autocommit mode (``isolation_level=None``) and open
  transactions explicitly: ``BEGIN IMMEDIATE`` for writes, so the write lock
  is taken up front and a busy database waits (``busy_timeout``) instead of
  failing at COMMIT with a lock upgrade deadlock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio

from . import migrate
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
    chunks,
    fold,
    message_row,
    prefixed,
    room_from_row,
    room_tips,
    summary_from_row,
)

T = TypeVar("T")

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT_MS = 5000
# Well under SQLite's default limit of 32766 bound parameters per statement.
_CHUNK = 400

# "UNIQUE constraint failed: <columns>" -> Conflict field. SQLite names the
# columns, not the constraint, and reports PRIMARY KEY clashes the same way.
_UNIQUE_FIELDS = {
    "users.email_lc": "email",
    "users.username_lc": "username",
    "users.id": "id",
    "messages.room_id, messages.seq": "seq",
    "messages.room_id, messages.sender_id, messages.cid": "cid",
    "messages.id": "id",
    "rooms.id": "id",
    "rooms.direct_key": "direct_key",
    "room_members.room_id, room_members.user_id": "member",
    "refresh_tokens.token_hash": "token",
}


def _map_integrity_error(exc: sqlite3.IntegrityError) -> StoreError:
    text = str(exc)
    prefix = "UNIQUE constraint failed: "
    if text.startswith(prefix):
        columns = text[len(prefix) :]
        return Conflict(_UNIQUE_FIELDS.get(columns, columns))
    if text.startswith("FOREIGN KEY"):
        # SQLite does not say which reference failed; for our schema it is a
        # room or a user that does not exist.
        return NotFound("a referenced room or user does not exist")
    return StoreError(f"SQLite integrity error: {text}")


def _guarded(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """Runs in the worker thread: the store's errors, never sqlite3's, escape."""
    try:
        return fn(conn)
    except sqlite3.IntegrityError as exc:
        raise _map_integrity_error(exc) from exc
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite: {exc}") from exc


@contextmanager
def _transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[None]:
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _connect(path: str, synchronous: str, *, reader: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,  # used from trio's worker threads, one at a time
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not reader:
            # WAL is a property of the file, so the writer sets it once for all.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"SQLite refused WAL mode for {path} (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        if reader:
            # A write through the read connection would bypass the writer's
            # serialisation; make it an error rather than a rare lock wait.
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _user(row: Sequence[Any] | None) -> User | None:
    return None if row is None else User(*row)


def _members(conn: sqlite3.Connection, room_id: str) -> tuple[RoomMember, ...]:
    rows = conn.execute(
        "SELECT user_id, role, read_seq FROM room_members WHERE room_id = ?"
        " ORDER BY joined_at, user_id",
        (room_id,),
    ).fetchall()
    return tuple(RoomMember(*r) for r in rows)


def _load_room(conn: sqlite3.Connection, room_id: str) -> Room | None:
    row = conn.execute(
        f"SELECT {ROOM_COLUMNS}, direct_key FROM rooms WHERE id = ?", (room_id,)
    ).fetchone()
    if row is None:
        return None
    return room_from_row(row, _members(conn, room_id))


_LIST_ROOMS = f"""
SELECT {prefixed("r", ROOM_COLUMNS)},
       r.direct_key, r.last_seq,
       (SELECT COUNT(*) FROM messages u
         WHERE u.room_id = r.id AND u.seq > me.read_seq AND u.sender_id <> me.user_id
           AND u.deleted_at IS NULL),
       {prefixed("m", MESSAGE_COLUMNS)}
FROM room_members me
JOIN rooms r ON r.id = me.room_id
LEFT JOIN messages m ON m.room_id = r.id AND m.seq = r.last_seq
WHERE me.user_id = ?
ORDER BY COALESCE(r.last_message_at, r.created_at) DESC, r.id
LIMIT ? OFFSET ?
"""

_INSERT_MESSAGE = (
    f"INSERT INTO messages ({MESSAGE_COLUMNS})"
    f" VALUES ({', '.join('?' * len(MESSAGE_COLUMNS.split(',')))})"
)
# MAX keeps the tip monotonic even if batches for one room were ever applied
# out of order; the write lock makes read-modify-write safe.
_ADVANCE_ROOM = (
    "UPDATE rooms SET last_seq = MAX(last_seq, ?),"
    " last_message_at = MAX(COALESCE(last_message_at, 0), ?) WHERE id = ?"
)


class SqliteStore:
    backend = "sqlite"

    def __init__(self, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(1)
        self._closed = False

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("store is closed")
        return await trio.to_thread.run_sync(
            _guarded, fn, self._writer, limiter=self._write_limiter
        )

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("store is closed")
        return await trio.to_thread.run_sync(_guarded, fn, self._reader, limiter=self._read_limiter)

    async def migrate(self) -> MigrationReport:
        return await self._write(migrate.migrate_sqlite)

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Through the limiters, so a call still running in a thread finishes
        # before its connection is closed under it.
        await trio.to_thread.run_sync(self._reader.close, limiter=self._read_limiter)
        await trio.to_thread.run_sync(self._writer.close, limiter=self._write_limiter)

    # users

    async def create_user(self, user: User) -> None:
        def run(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO users (id, email, email_lc, username, username_lc,"
                " display_name, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user.id,
                    user.email,
                    fold(user.email) if user.email is not None else None,
                    user.username,
                    fold(user.username) if user.username is not None else None,
                    user.display_name,
                    user.password_hash,
                    user.created_at,
                ),
            )

        await self._write(run)

    async def get_user(self, user_id: str) -> User | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,)
            ).fetchone()
        )
        return _user(row)

    async def get_user_by_login(self, login: str) -> User | None:
        key = fold(login)
        # An email match wins should a username ever equal someone's email.
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {USER_COLUMNS} FROM users WHERE email_lc = ? OR username_lc = ?"
                " ORDER BY email_lc = ? DESC LIMIT 1",
                (key, key, key),
            ).fetchone()
        )
        return _user(row)

    async def update_user(self, user_id: str, *, display_name: str) -> User | None:
        rows = await self._write(
            lambda c: c.execute(
                f"UPDATE users SET display_name = ? WHERE id = ? RETURNING {USER_COLUMNS}",
                (display_name, user_id),
            ).fetchall()  # all: a RETURNING statement completes only when stepped to the end
        )
        return _user(rows[0] if rows else None)

    async def existing_user_ids(self, user_ids: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(user_ids))

        def run(c: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for part in chunks(wanted, _CHUNK):
                marks = ", ".join("?" * len(part))
                rows = c.execute(f"SELECT id FROM users WHERE id IN ({marks})", part)
                found.update(r[0] for r in rows)
            return found

        return await self._read(run) if wanted else set()

    # refresh tokens

    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self._write(
            lambda c: c.execute(
                f"INSERT INTO refresh_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token.token_hash,
                    token.user_id,
                    token.family_id,
                    token.device,
                    token.created_at,
                    token.expires_at,
                    token.used_at,
                    token.revoked_at,
                ),
            )
        )

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
        )
        return None if row is None else RefreshToken(*row)

    async def use_refresh_token(self, token_hash: str, at: int) -> bool:
        # One conditional UPDATE is the atomic test-and-set: of two racing
        # refreshes with the same token exactly one sees rowcount 1.
        count = await self._write(
            lambda c: (
                c.execute(
                    "UPDATE refresh_tokens SET used_at = ?"
                    " WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL",
                    (at, token_hash),
                ).rowcount
            )
        )
        return count == 1

    async def revoke_token_family(self, family_id: str, at: int) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE refresh_tokens SET revoked_at = ?"
                " WHERE family_id = ? AND revoked_at IS NULL",
                (at, family_id),
            )
        )

    # rooms

    async def create_room(self, room: Room) -> Room:
        def run(c: sqlite3.Connection) -> Room:
            with _transaction(c):
                cur = c.execute(
                    f"INSERT INTO rooms ({ROOM_COLUMNS}, direct_key) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (direct_key) DO NOTHING",
                    (
                        room.id,
                        room.kind,
                        room.name,
                        room.created_by,
                        room.created_at,
                        room.direct_key,
                    ),
                )
                room_id = room.id
                if cur.rowcount == 0:
                    # The pair already has its direct room: hand that one back.
                    room_id = c.execute(
                        "SELECT id FROM rooms WHERE direct_key = ?", (room.direct_key,)
                    ).fetchone()[0]
                else:
                    c.executemany(
                        "INSERT INTO room_members (room_id, user_id, role, read_seq, joined_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [
                            (room.id, m.user_id, m.role, m.read_seq, room.created_at)
                            for m in room.members
                        ],
                    )
                stored = _load_room(c, room_id)
            assert stored is not None  # read inside the transaction that wrote it
            return stored

        return await self._write(run)

    async def get_room(self, room_id: str) -> Room | None:
        def run(c: sqlite3.Connection) -> Room | None:
            # One read transaction: room and members from the same snapshot.
            with _transaction(c, "DEFERRED"):
                return _load_room(c, room_id)

        return await self._read(run)

    async def list_rooms(self, user_id: str, *, limit: int, offset: int) -> list[RoomSummary]:
        if limit <= 0:
            return []

        def run(c: sqlite3.Connection) -> list[RoomSummary]:
            with _transaction(c, "DEFERRED"):
                rows = c.execute(_LIST_ROOMS, (user_id, limit, max(offset, 0))).fetchall()
                members: dict[str, list[RoomMember]] = {r[0]: [] for r in rows}
                for part in chunks(list(members), _CHUNK):
                    marks = ", ".join("?" * len(part))
                    for room_id, *member in c.execute(
                        f"SELECT room_id, user_id, role, read_seq FROM room_members"
                        f" WHERE room_id IN ({marks}) ORDER BY joined_at, user_id",
                        part,
                    ):
                        members[room_id].append(RoomMember(*member))
            return [summary_from_row(row, tuple(members[row[0]])) for row in rows]

        return await self._read(run)

    async def set_read_seq(self, room_id: str, user_id: str, seq: int) -> int:
        rows = await self._write(
            lambda c: c.execute(
                "UPDATE room_members SET read_seq = MAX(read_seq, ?)"
                " WHERE room_id = ? AND user_id = ? RETURNING read_seq",
                (seq, room_id, user_id),
            ).fetchall()
        )
        if not rows:
            raise NotFound(f"{user_id} is not a member of {room_id}")
        return int(rows[0][0])

    # messages

    async def insert_messages(self, messages: Sequence[StoredMessage]) -> None:
        if not messages:
            return
        rows = [message_row(m) for m in messages]
        tips = [(seq, at, room_id) for room_id, (seq, at) in room_tips(messages).items()]

        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.executemany(_INSERT_MESSAGE, rows)
                c.executemany(_ADVANCE_ROOM, tips)

        await self._write(run)

    async def last_seq(self, room_id: str) -> int:
        row = await self._read(
            lambda c: c.execute("SELECT last_seq FROM rooms WHERE id = ?", (room_id,)).fetchone()
        )
        return 0 if row is None else int(row[0])

    async def find_by_cids(
        self, room_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredMessage]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}

        def run(c: sqlite3.Connection) -> dict[tuple[str, str], StoredMessage]:
            found: dict[tuple[str, str], StoredMessage] = {}
            for part in chunks(wanted, _CHUNK):
                pairs = ", ".join("(?, ?)" for _ in part)
                params: list[str] = [room_id]
                for sender_id, cid in part:
                    params += (sender_id, cid)
                for row in c.execute(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages"
                    f" WHERE room_id = ? AND (sender_id, cid) IN (VALUES {pairs})",
                    params,
                ):
                    m = StoredMessage(*row)
                    found[(m.sender_id, m.cid)] = m
            return found

        return await self._read(run)

    async def messages_after(self, room_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (room_id, after_seq, limit),
            ).fetchall()
        )
        return [StoredMessage(*r) for r in rows]

    async def messages_before(
        self, room_id: str, before_seq: int, limit: int
    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq < ?"
                " ORDER BY seq DESC LIMIT ?",
                (room_id, before_seq, limit),
            ).fetchall()
        )
        return [StoredMessage(*r) for r in reversed(rows)]


@asynccontextmanager
async def open_sqlite_store(path: str, *, synchronous: str = "FULL") -> AsyncIterator[SqliteStore]:
    """Open (creating if needed) the database file at ``path``; migrations are the
    caller's business (``await store.migrate()``)."""
    mode = synchronous.upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
    if path in ("", ":memory:") or path.startswith("file::memory:"):
        # Each connection would get its own private, empty database.
        raise StoreError("in-memory SQLite is not supported; give a file path")

    def connect() -> SqliteStore:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = _connect(path, mode, reader=False)
        try:
            reader = _connect(path, mode, reader=True)
        except BaseException:
            writer.close()
            raise
        return SqliteStore(writer, reader)

    try:
        store = await trio.to_thread.run_sync(connect)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
