"""``Database``: what domain code holds to reach storage, on either backend.

Domain stores (users, rooms, billing, ...) are written once against this
class. It runs operations (``storage.sql.statements``) through a ``Driver``:

- ``fetch``/``fetchone``/``fetchval``/``execute``/``executemany``: one
  statement, one round trip, autocommit;
- ``read(op)``: a multi-statement read on one consistent snapshot;
- ``write(op)``: a multi-statement write, all or nothing.

Drivers turn the database's own errors into ``storage.errors`` (unique
violation -> ``Conflict`` with the field, foreign key -> ``NotFound``, the rest
-> ``StoreError``), so nothing driver-specific escapes this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from storage.fence import ROOM_FENCE, fenced
from storage.sql.dialect import Dialect
from storage.sql.statements import (
    Execute,
    ExecuteMany,
    Fetch,
    FetchOne,
    Op,
    Params,
    Row,
    Statement,
    single,
)

T = TypeVar("T")


class Driver(Protocol):
    dialect: Dialect

    async def run(self, op: Op[T], *, write: bool, transaction: bool) -> T:
        """Run ``op`` to completion: on the write or the read side, and inside
        one transaction or statement by statement in autocommit."""
        ...

    async def ping(self) -> None: ...
    async def schema_changed(self) -> None: ...
    async def aclose(self) -> None: ...


class Database:
    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.dialect: Dialect = driver.dialect
        self.backend: str = driver.dialect.name

    async def fetch(self, sql: str, params: Params = (), *, write: bool = False) -> list[Row]:
        """All rows; ``write=True`` for ``INSERT/UPDATE/DELETE ... RETURNING``."""
        rows: list[Row] = await self._one(Fetch(sql, params), write=write)
        return rows

    async def fetchone(self, sql: str, params: Params = (), *, write: bool = False) -> Row | None:
        row: Row | None = await self._one(FetchOne(sql, params), write=write)
        return row

    async def fetchval(self, sql: str, params: Params = (), *, write: bool = False) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = await self.fetchone(sql, params, write=write)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Params = ()) -> int:
        """A write; returns the number of rows it changed."""
        count: int = await self._one(Execute(sql, params), write=True)
        return count

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """One statement per parameter row, all in one transaction."""
        if rows:
            await self.write(single(ExecuteMany(sql, rows)))

    async def read(self, op: Op[T]) -> T:
        return await self._driver.run(op, write=False, transaction=True)

    async def write(self, op: Op[T]) -> T:
        fence = ROOM_FENCE.get()
        if fence is not None:
            # A room actor holding a lease (several nodes): the write and the
            # check that the lease is still ours commit together or not at all.
            op = fenced(self.dialect, dict((fence,)), op)
        return await self._driver.run(op, write=True, transaction=True)

    async def ping(self) -> None:
        await self._driver.ping()

    async def schema_changed(self) -> None:
        """After a migration: drop whatever a driver cached about the old schema."""
        await self._driver.schema_changed()

    async def aclose(self) -> None:
        await self._driver.aclose()

    async def _one(self, statement: Statement, *, write: bool) -> Any:
        if write and ROOM_FENCE.get() is not None:
            return await self.write(single(statement))
        return await self._driver.run(single(statement), write=write, transaction=False)
