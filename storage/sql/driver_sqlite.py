"""The SQLite driver: runs operations on stdlib sqlite3 in WAL mode.

Rules:
- Two connections: one for writes, one for reads. WAL lets the reader run
  beside the writer, and sqlite3 connections are not safe for concurrent use,
  so each is driven by at most one thread at a time: every operation goes
  through ``trio.to_thread.run_sync`` with a ``CapacityLimiter(1)`` of its own.
- A whole operation (all its statements, its transaction) runs in ONE thread
  call, so a transaction never spans an ``await`` and a trio cancellation can
  never leave one half open. (``to_thread.run_sync`` does not abandon the
  thread on cancel: the call finishes, then the cancellation is delivered.)
- Connections run in autocommit mode (``isolation_level=None``) and open
  transactions explicitly: ``BEGIN IMMEDIATE`` for writes, so the write lock
  is taken up front and a busy database waits (``busy_timeout``) instead of
  failing at COMMIT with a lock upgrade deadlock; ``BEGIN DEFERRED`` for
  multi-statement reads, which then see one snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio

from storage.errors import Conflict, NotFound, StoreError
from storage.sql.dialect import SQLITE, Dialect
from storage.sql.statements import Execute, ExecuteMany, Fetch, FetchOne, Op, Script, Statement

T = TypeVar("T")

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT_MS = 5000


def _map_error(exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        prefix = "UNIQUE constraint failed: "
        if text.startswith(prefix):
            return Conflict(SQLITE.conflict_field(text[len(prefix) :]))
        if text.startswith("FOREIGN KEY"):
            # SQLite does not say which reference failed; for our schema it is
            # a room or a user that does not exist.
            return NotFound("a referenced room or user does not exist")
        return StoreError(f"SQLite integrity error: {text}")
    return StoreError(f"SQLite: {text}")


def _execute(conn: sqlite3.Connection, statement: Statement) -> Any:
    if isinstance(statement, Fetch):
        return conn.execute(statement.sql, statement.params).fetchall()
    if isinstance(statement, FetchOne):
        # fetchall, not fetchone: a RETURNING statement completes only when
        # stepped to the end.
        rows = conn.execute(statement.sql, statement.params).fetchall()
        return rows[0] if rows else None
    if isinstance(statement, Execute):
        return conn.execute(statement.sql, statement.params).rowcount
    if isinstance(statement, ExecuteMany):
        conn.executemany(statement.sql, statement.rows)
        return None
    if isinstance(statement, Script):
        from storage.sql.migrate import split_sqlite_script

        for part in split_sqlite_script(statement.sql):
            conn.execute(part)
        return None
    raise TypeError(f"not a statement: {statement!r}")


def _drive(conn: sqlite3.Connection, op: Op[T], begin: str | None) -> T:
    """Runs in the connection's worker thread: the whole operation, one transaction."""
    try:
        if begin is not None:
            conn.execute(begin)
        try:
            statement = next(op)
            while True:
                statement = op.send(_execute(conn, statement))
        except StopIteration as done:
            if begin is not None:
                conn.execute("COMMIT")
            result: T = done.value
            return result
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise _map_error(exc) from exc
    finally:
        op.close()


def _connect(path: str, synchronous: str, *, reader: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,  # used from trio's worker threads, one at a time
        timeout=BUSY_TIMEOUT_MS / 1000,
        cached_statements=512,
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


class SqliteDriver:
    dialect: Dialect = SQLITE

    def __init__(self, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(1)
        self._closed = False

    async def run(self, op: Op[T], *, write: bool, transaction: bool) -> T:
        if self._closed:
            op.close()
            raise StoreError("store is closed")
        if write:
            conn, limiter = self._writer, self._write_limiter
            begin = "BEGIN IMMEDIATE" if transaction else None
        else:
            conn, limiter = self._reader, self._read_limiter
            begin = "BEGIN DEFERRED" if transaction else None
        return await trio.to_thread.run_sync(_drive, conn, op, begin, limiter=limiter)

    async def ping(self) -> None:
        await self.run(_select_one(), write=False, transaction=False)

    async def schema_changed(self) -> None:
        """Nothing to do: sqlite3 re-prepares a statement whose schema changed."""

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Through the limiters, so an operation still running in a thread
        # finishes before its connection is closed under it.
        await trio.to_thread.run_sync(self._reader.close, limiter=self._read_limiter)
        await trio.to_thread.run_sync(self._writer.close, limiter=self._write_limiter)


def _select_one() -> Op[None]:
    yield FetchOne("SELECT 1")


@asynccontextmanager
async def open_sqlite_driver(
    path: str, *, synchronous: str = "FULL"
) -> AsyncIterator[SqliteDriver]:
    """Open (creating if needed) the database file at ``path``."""
    mode = synchronous.upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
    if path in ("", ":memory:") or path.startswith("file::memory:"):
        # Each connection would get its own private, empty database.
        raise StoreError("in-memory SQLite is not supported; give a file path")

    def connect() -> SqliteDriver:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = _connect(path, mode, reader=False)
        try:
            reader = _connect(path, mode, reader=True)
        except BaseException:
            writer.close()
            raise
        return SqliteDriver(writer, reader)

    try:
        driver = await trio.to_thread.run_sync(connect)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc
    try:
        yield driver
    finally:
        with trio.CancelScope(shield=True):
            await driver.aclose()
