"""TEMPORARY: the old twin-file calling convention, until every domain is ported.

The twins (``*_sqlite.py``, ``*_postgres.py``) reached into the old stores'
private members. These adapters give ``SqlStore`` those members on top of the
new drivers so main stays green while domains move to ``Database`` one by
one. This module is deleted together with the last twin (issue 19).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import trio

from .database import Database
from .errors import StoreError

T = TypeVar("T")


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


class LegacyAccess:
    """Mixed into ``SqlStore``: ``_write``/``_read`` (SQLite), ``_run``/
    ``_in_transaction``/``_pool`` (PostgreSQL)."""

    db: Database

    def _legacy_driver(self) -> Any:
        return self.db._driver

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        d = self._legacy_driver()
        return await _sqlite_call(d, fn, d._writer, d._write_limiter)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        d = self._legacy_driver()
        return await _sqlite_call(d, fn, d._reader, d._read_limiter)

    @property
    def _pool(self) -> Any:
        return self._legacy_driver()._pool

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        d = self._legacy_driver()
        return await d.run_legacy(fn, *args)  # type: ignore[no-any-return]

    async def _in_transaction(
        self, fn: Callable[[Any], Awaitable[T]], *, readonly: bool = False
    ) -> T:
        isolation = "repeatable_read" if readonly else "read_committed"
        pool = self._pool

        async def run() -> T:
            async with pool.acquire() as c, c.transaction(isolation=isolation, readonly=readonly):
                return await fn(c)

        return await self._run(run)


async def _sqlite_call(
    driver: Any, fn: Callable[[sqlite3.Connection], T], conn: Any, limiter: Any
) -> T:
    from .driver_sqlite import _map_error

    if driver._closed:
        raise StoreError("store is closed")

    def guarded(c: sqlite3.Connection) -> T:
        try:
            return fn(c)
        except sqlite3.Error as exc:
            raise _map_error(exc) from exc

    return await trio.to_thread.run_sync(guarded, conn, limiter=limiter)
