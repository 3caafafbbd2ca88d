"""The PostgreSQL driver: runs operations on asyncpg, one bridge crossing each.

asyncpg is asyncio code; it runs on one asyncio loop hosted in the trio run
(``storage.sql.asyncio_bridge``). A whole operation, every statement of it and
its transaction, is driven inside ONE asyncio task: one crossing, one pool
checkout, instead of one per statement.

Rules:
- Pooled connections are handed back without asyncpg's reset query (``RESET
  ALL``, ``UNLISTEN *``...): this code never changes session state, and the
  query cost a round trip per operation.
- A trio cancellation cancels the asyncio task; asyncpg rolls the open
  transaction back when the connection is released.
- asyncpg errors never escape: unique violations become ``Conflict`` named by
  constraint (the names are fixed in migrations/postgres), foreign-key
  violations ``NotFound``, everything else ``StoreError``.
- Reads of several statements use one snapshot (repeatable read, read only),
  like SQLite's read transaction.

Why asyncpg (issue 19, item 2; ``storage.sql.bench_drivers`` has the method and
the full tables). Measured side by side on this 2-core machine:

==============================================  ============  ===========
CPU per operation or row (median of 3)           point read    200-row commit
==============================================  ============  ===========
asyncpg, crossing + pool checkout per statement   505-569 us    17.2 us/row
asyncpg, ONE crossing per operation (this file)   200-242 us    13.1 us/row
psycopg 3 sync connection in a worker thread      178-210 us     7.8 us/row
asyncpg on plain asyncio (floor, no trio)          34-39 us      6.6 us/row
==============================================  ============  ===========

psycopg in a thread wins the micro-benchmark, so a psycopg driver was built
(same interface, one thread hop per operation, binary list parameters,
server-side cancel). End to end it lost: ``bench rooms --database postgres``
in 4 alternating pairs gave it 0.70x the acked messages/s at 1.25x the server
CPU per ack. A worker thread coming back from the database waits for the GIL
held by the busy trio thread; the hosted asyncio loop never does. So this
driver keeps asyncpg and removes what the measurement blamed: one crossing
per operation instead of per statement, no reset query per checkout, and the
group-commit writer on a connection of its own (``dedicated``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import trio

from storage.errors import Conflict, NotFound, StoreError
from storage.sql.asyncio_bridge import AsyncioBridge, open_asyncio_bridge
from storage.sql.dialect import POSTGRES, Dialect, postgres_placeholders
from storage.sql.statements import Execute, ExecuteMany, Fetch, FetchOne, Op, Script, Statement

T = TypeVar("T")

# Errors that mean "the database failed us" rather than a bug in our code.
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

# Without a limit, a query on a connection that died silently (no RST) would
# hang forever and, through the writer, every room with it. Scripts
# (migrations) carry their own, longer limit.
COMMAND_TIMEOUT = 60.0


def _rowcount(status: str) -> int:
    # asyncpg answers a command tag: "UPDATE 3", "DELETE 0", "INSERT 0 1".
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def _execute(conn: Any, statement: Statement) -> Any:
    if isinstance(statement, Fetch):
        return await conn.fetch(postgres_placeholders(statement.sql), *statement.params)
    if isinstance(statement, FetchOne):
        return await conn.fetchrow(postgres_placeholders(statement.sql), *statement.params)
    if isinstance(statement, Execute):
        status = await conn.execute(postgres_placeholders(statement.sql), *statement.params)
        return _rowcount(status)
    if isinstance(statement, ExecuteMany):
        await conn.executemany(postgres_placeholders(statement.sql), statement.rows)
        return None
    if isinstance(statement, Script):
        await conn.execute(statement.sql, timeout=statement.timeout)
        return None
    raise TypeError(f"not a statement: {statement!r}")


async def _steps(conn: Any, op: Op[T]) -> T:
    try:
        statement = next(op)
        while True:
            statement = op.send(await _execute(conn, statement))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        op.close()


async def _drive(pool: Any, op: Op[T], write: bool, transaction: bool) -> T:
    """Runs in the asyncio loop: one checkout, the whole operation."""
    async with pool.acquire() as conn:
        if not transaction:
            return await _steps(conn, op)
        # Several reads see one snapshot, like SQLite's read transaction.
        isolation = "read_committed" if write else "repeatable_read"
        async with conn.transaction(isolation=isolation, readonly=not write):
            return await _steps(conn, op)


async def _no_reset(conn: Any) -> None:
    return None


class _HeldConnection:
    """Pool-shaped access to ONE connection of its own, for the hot path.

    After any failure the connection is dropped (a query cancelled mid-way
    leaves asyncpg's protocol in doubt) and the next operation reconnects.
    """

    def __init__(self, connect: Callable[[], Awaitable[Any]]) -> None:
        self._connect = connect
        self._conn: Any = None

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        try:
            yield self._conn
        except asyncpg.PostgresError:
            raise  # the server refused a statement; the connection is fine
        except BaseException:
            conn, self._conn = self._conn, None
            conn.terminate()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def terminate(self) -> None:
        if self._conn is not None:
            self._conn.terminate()

    def expire_connections(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None


class PostgresDriver:
    dialect: Dialect = POSTGRES

    def __init__(self, bridge: AsyncioBridge, pool: Any, dsn: str) -> None:
        self._bridge = bridge
        self._pool = pool
        self._dsn = dsn
        self._closed = False

    @asynccontextmanager
    async def dedicated(self) -> AsyncIterator[PostgresDriver]:
        """A driver on one connection of its own, outside the pool, so the
        group-commit writer never queues behind REST reads for a checkout."""

        async def connect() -> Any:
            return await asyncpg.connect(self._dsn, command_timeout=COMMAND_TIMEOUT)

        held = PostgresDriver(self._bridge, _HeldConnection(connect), self._dsn)
        try:
            yield held
        finally:
            with trio.CancelScope(shield=True):
                await held.aclose()

    async def run(self, op: Op[T], *, write: bool, transaction: bool) -> T:
        if self._closed:
            op.close()
            raise StoreError("store is closed")
        return await self._call(_drive, self._pool, op, write, transaction)

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            return await self._bridge.run(fn, *args)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(POSTGRES.conflict_field(exc.constraint_name or "")) from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"a referenced row does not exist ({exc.constraint_name})") from exc
        except _DATABASE_ERRORS as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    async def ping(self) -> None:
        await self.run(_select_one(), write=False, transaction=False)

    async def schema_changed(self) -> None:
        """Cached prepared statements may describe a schema a migration changed."""
        expire = self._pool.expire_connections

        async def run() -> None:
            result = expire()
            if result is not None:  # the pool's is a coroutine, a held connection's is not
                await result

        await self._bridge.run(run)

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


def _select_one() -> Op[None]:
    yield FetchOne("SELECT 1")


@asynccontextmanager
async def open_postgres_driver(
    dsn: str, *, min_size: int = 1, max_size: int = 10
) -> AsyncIterator[PostgresDriver]:
    """A pooled driver on ``dsn``. Query parameters asyncpg does not know
    (``?search_path=...``) are sent as server settings."""
    async with open_asyncio_bridge() as bridge:
        try:
            pool = await bridge.run(
                asyncpg.create_pool,
                dsn,
                min_size=min_size,
                max_size=max_size,
                command_timeout=COMMAND_TIMEOUT,
                reset=_no_reset,
            )
        except _DATABASE_ERRORS as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        driver = PostgresDriver(bridge, pool, dsn)
        try:
            yield driver
        finally:
            with trio.CancelScope(shield=True):
                await driver.aclose()
