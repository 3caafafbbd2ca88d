"""Choose the PostgreSQL driver by measurement (issue 19, item 2).

Outcome: the server KEEPS asyncpg, with one bridge crossing per whole
operation, no pool reset and the writer on its own connection
(``storage.sql.driver_postgres``). This micro-benchmark alone favours psycopg in
a thread (its recommendation, kept below as written), but the driver built
that way lost end to end: ``realtime-server bench rooms --database postgres``,
4 alternating pairs in one session, psycopg driver against this asyncpg one:
0.70x the acknowledged messages/s and 1.25x the server CPU per ack (141-154
against 104-167 us). Every thread hop needs the GIL back from a busy trio
thread (up to the 5 ms switch interval), and a write transaction made three
hops (BEGIN, statement, COMMIT); the asyncio loop runs in the trio thread and
never waits for the GIL. psycopg is in the ``dev`` extra for this script only.

Needs the ``dev`` extra (psycopg 3.3.9) and optionally ``uvloop`` for the
floor. Run (creates a scratch schema ``bench_drivers_<pid>`` and drops it)::

    flock /work/wt/bench.lock python -m storage.sql.bench_drivers \
        --dsn postgresql://postgres@127.0.0.1:5432/test [--no-fsync-wait]

Everything runs from one process, side by side; each figure is the median of
3 interleaved repetitions. CPU is ``time.process_time`` of this process (all
its threads; the PostgreSQL server is not counted). The variants:

(a) today: asyncpg under trio-asyncio, one bridge crossing and one pool
    checkout per statement (asyncpg's pool resets the connection on release:
    one more round trip each time; the statements are separate autocommits);
(b) asyncpg under trio-asyncio, ONE crossing per transaction, on a connection
    held by the caller (no pool, no reset);
(c) psycopg 3.3.9 sync connection driven by a worker thread
    (``trio.to_thread.run_sync`` with a ``CapacityLimiter(1)`` per
    connection), one hop per transaction; batch insert as one ``unnest()``
    statement (text or binary parameters), as ``executemany`` (psycopg
    pipelines it), or the whole transaction in pipeline mode (BEGIN, INSERT,
    UPDATE, COMMIT in one round trip);
(d) psycopg's async connection driven by trio. psycopg does NOT support trio
    (3.3.9 source: ``waiting.wait_async`` uses asyncio's ``add_reader``,
    ``connect`` resolves with ``loop.getaddrinfo``, the lock is an
    ``asyncio.Lock``; psycopg/psycopg#29 "Trio support" is open, the anyio PR
    psycopg/psycopg#146 was closed unmerged). Its I/O is sans-I/O generators,
    so ``TrioAsyncConnection`` below overrides the internal ``wait`` hook with
    trio's ``wait_readable``/``wait_writable`` and connects with libpq in a
    thread. It works, but rests on internals: measured to know the price of
    native I/O, not proposed as is;
(e) floor: asyncpg on plain asyncio + uvloop 0.23, held connection, no trio.

Workloads: the hot path (one transaction = ``INSERT ... SELECT * FROM
unnest(...) ON CONFLICT (room_id, sender_id, cid) DO NOTHING RETURNING
room_id, sender_id, cid`` for N messages over min(N, 8) rooms, then one
``UPDATE rooms ... FROM unnest(...)`` advancing each room's last_seq), with 1
committer and with 4 committers on 4 connections (disjoint rooms); and a point
read by primary key with 1 task on 1 connection and 16 tasks on 4 held
connections (for (a) and (e) a pool of that size).

Figures, 2026-12-02, this 2-core VM shared with other sessions' test runs
(load average 4-5 during the run), PostgreSQL 15 on localhost,
synchronous_commit on (so small commits wait for an fsync: commits/s at N=1
is the disk's, CPU us is the driver's). ratio = vs (a) in the same row group.

    hot path: one transaction = insert N messages (unnest/ON CONFLICT/RETURNING)
              + advance each room's last_seq; medians; ratio = commits/s vs (a)
    variant                               N     conc commit/s   rows/s CPUus/rw  wall us    ratio
    a  asyncpg, crossing+pool/stmt        1        1      258      258   1595.3    3,874     1.00
    b  asyncpg, 1 crossing/txn            1        1      344      344    999.2    2,904     1.33
    c  psycopg thread, unnest %s          1        1      405      405    722.3    2,472     1.57
    c  psycopg thread, unnest %b          1        1      323      323    680.4    3,100     1.25
    c  psycopg thread, executemany        1        1      285      285    925.8    3,505     1.11
    c  psycopg thread, pipeline           1        1      462      462    708.8    2,162     1.79
    d  psycopg on trio (hook)             1        1      727      727    460.1    1,376     2.82
    e  floor asyncpg+uvloop               1        1      938      938    258.0    1,066     3.64
    a  asyncpg, crossing+pool/stmt        1        4      437      109   4772.8    9,162     1.00
    b  asyncpg, 1 crossing/txn            1        4      629      154   3501.0    6,357     1.44
    c  psycopg thread, unnest %s          1        4      821      208   2442.1    4,875     1.88
    c  psycopg thread, unnest %b          1        4      764      191   2487.5    5,235     1.75
    c  psycopg thread, executemany        1        4      915      231   2400.6    4,374     2.09
    c  psycopg thread, pipeline           1        4      695      179   3225.6    5,758     1.59
    d  psycopg on trio (hook)             1        4      830      211   1990.8    4,821     1.90
    e  floor asyncpg+uvloop               1        4    1,238      311    951.1    3,231     2.84
    a  asyncpg, crossing+pool/stmt       20        1      206    4,115     85.8    4,861     1.00
    b  asyncpg, 1 crossing/txn           20        1      214    4,278     75.5    4,675     1.04
    c  psycopg thread, unnest %s         20        1      253    5,065     50.3    3,949     1.23
    c  psycopg thread, unnest %b         20        1      272    5,434     44.6    3,680     1.32
    c  psycopg thread, executemany       20        1      266    5,318     53.8    3,761     1.29
    c  psycopg thread, pipeline          20        1      413    8,262     41.4    2,421     2.01
    d  psycopg on trio (hook)            20        1      517   10,349     33.2    1,933     2.52
    e  floor asyncpg+uvloop              20        1      364    7,286     18.9    2,745     1.77
    a  asyncpg, crossing+pool/stmt       20        4      310    1,538    286.6   12,923     1.00
    b  asyncpg, 1 crossing/txn           20        4      423    2,154    211.6    9,448     1.37
    c  psycopg thread, unnest %s         20        4      505    2,470    210.0    7,926     1.63
    c  psycopg thread, unnest %b         20        4      620    2,969    161.0    6,455     2.00
    c  psycopg thread, executemany       20        4      417    2,168    237.2    9,593     1.35
    c  psycopg thread, pipeline          20        4      562    2,845    172.2    7,112     1.82
    d  psycopg on trio (hook)            20        4      465    2,413    172.0    8,594     1.50
    e  floor asyncpg+uvloop              20        4      689    3,564     67.3    5,807     2.23
    a  asyncpg, crossing+pool/stmt      200        1       97   19,451     17.2   10,282     1.00
    b  asyncpg, 1 crossing/txn          200        1      111   22,202     13.1    9,008     1.14
    c  psycopg thread, unnest %s        200        1      103   20,538     13.7    9,738     1.06
    c  psycopg thread, unnest %b        200        1      127   25,407      7.8    7,872     1.31
    c  psycopg thread, executemany      200        1       67   13,309     21.2   15,027     0.68
    c  psycopg thread, pipeline         200        1       98   19,599     13.8   10,204     1.01
    d  psycopg on trio (hook)           200        1       78   15,623     13.3   12,802     0.80
    e  floor asyncpg+uvloop             200        1       90   18,036      6.6   11,089     0.93
    a  asyncpg, crossing+pool/stmt      200        4      122    5,956     49.8   32,672     1.00
    b  asyncpg, 1 crossing/txn          200        4      147    7,538     35.8   27,251     1.20
    c  psycopg thread, unnest %s        200        4      143    7,285     48.6   27,999     1.17
    c  psycopg thread, unnest %b        200        4      164    8,195     31.7   24,406     1.34
    c  psycopg thread, executemany      200        4       83    4,059     96.2   48,111     0.68
    c  psycopg thread, pipeline         200        4      122    6,210     54.3   32,906     0.99
    d  psycopg on trio (hook)           200        4      165    7,979     53.7   24,257     1.35
    e  floor asyncpg+uvloop             200        4      295   14,442     25.9   13,569     2.41

    point read by primary key: 1 task on 1 connection, 16 tasks on 4 connections
    variant                           tasks    ops/s CPUus/op    ratio
    a  asyncpg, crossing+pool/stmt        1    1,225    569.3     1.00
    b  asyncpg, 1 crossing/txn            1    2,697    242.3     2.20
    c  psycopg thread, 1 hop/op           1    3,170    209.5     2.59
    d  psycopg on trio (hook)             1    6,153     96.6     5.02
    e  floor asyncpg+uvloop               1   12,930     33.8    10.56
    a  asyncpg, crossing+pool/stmt       16    1,614    505.4     1.00
    b  asyncpg, 1 crossing/txn           16    3,472    200.1     2.15
    c  psycopg thread, 1 hop/op          16    4,273    177.5     2.65
    d  psycopg on trio (hook)            16    7,933     76.6     4.91
    e  floor asyncpg+uvloop              16   14,628     39.2     9.06

Two other complete runs (one with ``--no-fsync-wait``) and one of a, b, c, e
at N=20/200 gave the same ordering with absolute figures varying up to 2x
with the machine's load; CPU per row/op is the steadier column. In all four:

- (a), today's shape, is the slowest at N <= 20 and for reads: 1.7-3.5x the
  CPU per row of the best trio variant at N <= 20, 2.7x the thread's CPU per
  point read and 6x (d)'s (each statement pays a bridge crossing plus a
  reset round trip on pool release).
- The trio-asyncio crossing itself is the dearest thing measured: point read
  (b) 200-240 us CPU vs 34-39 for the same asyncpg call on plain asyncio (e).
  A thread hop (c) costs less (177-210 us), trio-native I/O (d) least
  (77-97 us). So one crossing per transaction (b) helps (1.04-1.44x over (a)),
  but asyncpg under trio never gets near its own floor.
- psycopg in a thread, one hop per transaction, beats (b) at N <= 20 in every
  run (1.2-2.3x (a) vs 1.0-1.5x), and with BINARY parameters (``%b``,
  ``binary=True``) it also beats (b) at N=200: 7.8 vs 13.1 us CPU per row
  alone, 31.7 vs 35.8 with 4 committers (text parameters: 13.7 and 48.6).
  Large batches are server-bound: the trio variants are within 0.8-1.35x of
  (a) in commits/s (executemany aside).
- ``executemany`` is never better than one ``unnest()`` statement and is the
  worst variant at N=200 (0.57-0.87x of (a), about 2x the CPU per row).
- Pipeline mode for the whole transaction saves 3 of 4 round trips. With
  synchronous_commit on and a loaded machine (every round trip is a thread
  wake-up) it cut the wall time per commit at N=1-20 with one committer
  (2,421 vs 3,949 us above; 3,884 vs 5,603 in the other durable run); with
  ``--no-fsync-wait`` it lost (2,118 vs 1,431), and at N=200 it is neutral.
  CPU per row about the same as plain unnest. Not measured: pipeline with
  binary parameters.
- (d) is the cheapest in CPU under trio (reads at half the thread's cost,
  commits at N=1 about 0.65x), but is unsupported.

Trade-offs seen:

- Threads vs an asyncio loop. A thread per connection (one writer thread on
  its own connection, a few reader threads) is supported, public API, and
  drops trio-asyncio altogether (a second scheduler, the exception-group
  unwrapping in ``asyncio_bridge``). It matches the lead's design: the
  operation generator runs inside the thread with the sync driver, exactly
  like SQLite's storage thread, so a transaction never spans an ``await`` and
  one DB-API driver can serve both (sqlite3 and psycopg are both DB-API). The
  costs: one hop (~150 us CPU here) per operation, and the thread's Python
  work contends for the GIL with the trio thread; keep per-row work in C
  (binary parameters, unnest) and threads few.
- Cancellation (measured: trio scope cancelled 0.2 s into
  ``SELECT pg_sleep(2)`` inside a transaction): (a) and (b) leave in 208 ms
  and the connection works next (trio-asyncio cancels the asyncio task,
  asyncpg sends a cancel request and the transaction rolls back). (c):
  ``trio.to_thread.run_sync`` is uncancellable by default, the scope would
  wait the full 2 s; with ``abandon_on_cancel=True`` (the thread keeps its
  limiter token until it ends, so nobody else gets the connection meanwhile)
  plus a server cancel request (``cancel_safe()`` in a shielded hop) it
  leaves in 207 ms and the next query works in 2 ms. Caveat: a cancel that
  lands between two statements finds the connection idle, so the thread goes
  on and may COMMIT after the caller saw ``Cancelled``; the driver should
  check a cancelled flag between the statements the generator yields (that
  outcome is "unknown" to the caller in any driver: acknowledge only on
  return). (d): psycopg's own ``wait`` only handles ``asyncio.CancelledError``;
  a trio ``Cancelled`` would leave the connection ACTIVE, so the hook sends
  the cancel and drains the reply itself (211 ms, usable afterwards).
- DSN. asyncpg sends unknown URI parameters (the tests' ``?search_path=s``) as
  server settings. libpq refuses them (``ProgrammingError: invalid URI query
  parameter: "search_path"``). ``libpq_conninfo()`` below moves every key
  libpq does not know (``pq.Conninfo.get_defaults()``) into
  ``options=-c search_path=s`` (sent at startup, same effect); spaces must be
  ``%20``, libpq does not decode ``+``. Used for every psycopg connection here.
- Type strictness. asyncpg checks Python types against the parameter types:
  ``1`` for ``$1::text`` or ``'1'`` for ``$1::bigint`` is a ``DataError``.
  psycopg sends a typed (or unknown-typed) value and lets the server cast:
  ``1`` into ``%s::text`` gives ``'1'``, ``'1'`` into ``%s::bigint`` gives
  ``1``, ``[1]`` into ``%s::text[]`` gives ``['1']``. As loose as SQLite, so
  the two-backend suite stops catching type slips; an empty list needs its
  cast (``%s::text[]``), which the queries here always carry.

Recommendation: psycopg 3, sync connection in a worker thread, one hop per
whole operation (the generator runs in the thread), on held connections: a
dedicated writer connection+thread for the group commit and a small pool
(e.g. 4) of held reader connections, each with its own ``CapacityLimiter(1)``
and no reset on checkout. Batch inserts as one ``unnest()`` statement with
binary parameters and explicit casts; not ``executemany``; try pipeline
mode for the writer's transaction in the real writer (it cut commit latency
for a single committer when commits wait for fsync, and costs nothing in
CPU), keeping plain statements elsewhere. Cancel with ``abandon_on_cancel=True`` plus a
server cancel request. Do not keep asyncpg: its codec is fast (see (e)) but
under trio every call pays the trio-asyncio crossing, and even at one
crossing per transaction it stays behind the thread at N <= 20 and behind
binary psycopg at N=200. (d) halves the CPU of point reads again and is the
path to take if psycopg ever supports trio (or if read CPU becomes the
bottleneck and an internal hook is acceptable).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import select
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import psycopg
import trio
import trio_asyncio  # type: ignore[import-untyped]
from psycopg import pq
from psycopg.abc import PQGen
from psycopg.waiting import Ready, Wait

uvloop: Any
try:
    # Optional, and not a dependency: imported by name so mypy does not need it.
    uvloop = importlib.import_module("uvloop")
except ImportError:  # the floor is then plain asyncio
    uvloop = None

ROOMS_PER_COMMITTER = 500
READ_ROWS = 10_000
SCHEMA_SQL = """
CREATE TABLE rooms (id text PRIMARY KEY, last_seq bigint NOT NULL, last_message_at bigint);
CREATE TABLE messages (
    id text PRIMARY KEY, room_id text NOT NULL, seq bigint NOT NULL, sender_id text NOT NULL,
    cid text NOT NULL, text text NOT NULL, created_at bigint NOT NULL,
    UNIQUE (room_id, seq), UNIQUE (room_id, sender_id, cid));
"""

# The hot path: one statement for the batch, conflicts on the idempotency key
# skipped and the rows that did go in returned, so the caller looks up only
# the others; then each room's high-water mark.
_INSERT_UNNEST = (
    "INSERT INTO messages (id, room_id, seq, sender_id, cid, text, created_at)"
    " SELECT * FROM unnest({0}::text[], {1}::text[], {2}::bigint[], {3}::text[],"
    " {4}::text[], {5}::text[], {6}::bigint[])"
    " ON CONFLICT (room_id, sender_id, cid) DO NOTHING RETURNING room_id, sender_id, cid"
)
_INSERT_ROW = (
    "INSERT INTO messages (id, room_id, seq, sender_id, cid, text, created_at)"
    " VALUES ({0}, {1}, {2}, {3}, {4}, {5}, {6})"
    " ON CONFLICT (room_id, sender_id, cid) DO NOTHING RETURNING room_id, sender_id, cid"
)
_ADVANCE_ROOMS = (
    "UPDATE rooms r SET last_seq = u.seq, last_message_at = u.at"
    " FROM unnest({0}::text[], {1}::bigint[], {2}::bigint[]) AS u(id, seq, at)"
    " WHERE r.id = u.id AND r.last_seq < u.seq"
)
_READ = "SELECT id, room_id, seq, sender_id, cid, text, created_at FROM messages WHERE id = {0}"


def _dollar(sql: str, n: int) -> str:
    return sql.format(*(f"${i + 1}" for i in range(n)))


def _percent(sql: str, n: int) -> str:
    return sql.format(*(["%s"] * n))


PG_INSERT, PS_INSERT = _dollar(_INSERT_UNNEST, 7), _percent(_INSERT_UNNEST, 7)
PS_INSERT_ROW = _percent(_INSERT_ROW, 7)
# %b: parameters in binary, like asyncpg sends them (%s lets psycopg choose).
PS_INSERT_BIN, PS_ADVANCE_BIN = (
    _INSERT_UNNEST.format(*(["%b"] * 7)),
    _ADVANCE_ROOMS.format(*(["%b"] * 3)),
)
PG_ADVANCE, PS_ADVANCE = _dollar(_ADVANCE_ROOMS, 3), _percent(_ADVANCE_ROOMS, 3)
PG_READ, PS_READ = _dollar(_READ, 1), _percent(_READ, 1)


# --- workload ---------------------------------------------------------------


@dataclass
class Batch:
    rows: list[tuple[str, str, int, str, str, str, int]]
    columns: tuple[list[Any], ...]  # the same rows, one list per column (unnest)
    rooms: tuple[list[str], list[int], list[int]]


@dataclass
class Committer:
    """One writer's rooms (disjoint from the other writers', as a sharded
    writer would have them) and their sequence counters."""

    index: int
    n: int
    seqs: dict[str, int] = field(default_factory=dict)
    next_room: int = 0
    counter: int = 0

    def rooms(self) -> list[str]:
        return [f"r{self.index}-{i}" for i in range(ROOMS_PER_COMMITTER)]

    def batch(self) -> Batch:
        # A batch of n messages over min(n, 8) rooms, rooms taken in turn.
        spread = min(self.n, 8)
        room_ids = [
            f"r{self.index}-{(self.next_room + i) % ROOMS_PER_COMMITTER}" for i in range(spread)
        ]
        self.next_room += spread
        at = time.time_ns() // 1_000_000
        rows = []
        for i in range(self.n):
            room = room_ids[i % spread]
            seq = self.seqs.get(room, 0) + 1
            self.seqs[room] = seq
            self.counter += 1
            mid = f"m{self.index}-{os.getpid()}-{self.counter}"
            rows.append((mid, room, seq, f"u{i % 4}", mid, "hello world, a message", at))
        columns = tuple(list(c) for c in zip(*rows, strict=True))
        return Batch(rows, columns, (room_ids, [self.seqs[r] for r in room_ids], [at] * spread))


def read_ids() -> list[str]:
    return [f"read-{i}" for i in range(READ_ROWS)]


# --- DSN -------------------------------------------------------------------


def with_search_path(dsn: str, schema: str) -> str:
    """The DSN the tests would pass: ``?search_path=schema``."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


def libpq_conninfo(dsn: str) -> str:
    """libpq refuses URI parameters it does not know (``search_path=`` gives
    "invalid URI query parameter"); asyncpg sends them as server settings.
    Move them into ``options=-c name=value``, which libpq sends at startup,
    so the two drivers take the same DSN."""
    known = {d.keyword.decode() for d in pq.Conninfo.get_defaults()}
    parts = urlsplit(dsn)
    keep: list[tuple[str, str]] = []
    options: list[str] = []
    for k, v in parse_qsl(parts.query):
        if k in known:
            keep.append((k, v))
        else:
            options.append(f"-c {k}={v}")
    if options:
        keep.append(("options", " ".join(options)))
    return urlunsplit(parts._replace(query=urlencode(keep, quote_via=quote)))


# --- drivers ---------------------------------------------------------------


class Driver(Protocol):
    async def commit(self, conn_index: int, batch: Batch) -> int: ...
    async def read(self, conn_index: int, key: str) -> Any: ...


class HeldPool:
    """Connections held by trio, checked out through a channel: no reset on
    return, the caller owns the connection for the whole operation."""

    def __init__(self, conns: Sequence[Any]) -> None:
        self._send, self._recv = trio.open_memory_channel[Any](len(conns))
        for c in conns:
            self._send.send_nowait(c)

    @asynccontextmanager
    async def get(self) -> AsyncIterator[Any]:
        conn = await self._recv.receive()
        try:
            yield conn
        finally:
            self._send.send_nowait(conn)


# (a) today: asyncpg under trio-asyncio, one crossing and one pool checkout
# per statement (the statements of a batch are separate autocommits).
class AsyncpgPerStatement:
    def __init__(self, loop: Any, pool: Any) -> None:
        self.loop = loop
        self.pool = pool

    async def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return await trio_asyncio.aio_as_trio(fn, loop=self.loop)(*args)

    async def commit(self, conn_index: int, batch: Batch) -> int:
        inserted = await self.run(self.pool.fetch, PG_INSERT, *batch.columns)
        await self.run(self.pool.execute, PG_ADVANCE, *batch.rooms)
        return len(inserted)

    async def read(self, conn_index: int, key: str) -> Any:
        return await self.run(self.pool.fetchrow, PG_READ, key)


async def _asyncpg_txn(conn: Any, batch: Batch) -> int:
    async with conn.transaction():
        inserted = await conn.fetch(PG_INSERT, *batch.columns)
        await conn.execute(PG_ADVANCE, *batch.rooms)
    return len(inserted)


# (b) asyncpg under trio-asyncio, one crossing per transaction, held connection.
class AsyncpgPerTransaction:
    def __init__(self, loop: Any, conns: list[Any]) -> None:
        self.loop = loop
        self.conns = conns
        self.pool = HeldPool(conns)

    async def commit(self, conn_index: int, batch: Batch) -> int:
        n: int = await trio_asyncio.aio_as_trio(_asyncpg_txn, loop=self.loop)(
            self.conns[conn_index], batch
        )
        return n

    async def read(self, conn_index: int, key: str) -> Any:
        async with self.pool.get() as c:
            return await trio_asyncio.aio_as_trio(c.fetchrow, loop=self.loop)(PG_READ, key)


class ThreadConn:
    """A psycopg sync connection driven by one worker thread at a time."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.limiter = trio.CapacityLimiter(1)

    async def call(self, fn: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        try:
            # abandon_on_cancel: the trio caller leaves at once; the thread
            # keeps its limiter token until it is done, so no one else can
            # use the connection meanwhile.
            return await trio.to_thread.run_sync(
                fn, self.conn, limiter=self.limiter, abandon_on_cancel=True
            )
        except trio.Cancelled:
            # The query may still be running: ask the server to stop it so
            # the thread fails fast and its transaction rolls back.
            if self.conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.conn.cancel_safe)
            raise


def _ps_unnest(conn: psycopg.Connection[Any], batch: Batch) -> int:
    with conn.transaction():
        inserted = conn.execute(PS_INSERT, batch.columns).fetchall()
        conn.execute(PS_ADVANCE, batch.rooms)
    return len(inserted)


def _ps_unnest_binary(conn: psycopg.Connection[Any], batch: Batch) -> int:
    with conn.transaction():
        inserted = conn.execute(PS_INSERT_BIN, batch.columns, binary=True).fetchall()
        conn.execute(PS_ADVANCE_BIN, batch.rooms)
    return len(inserted)


def _ps_executemany(conn: psycopg.Connection[Any], batch: Batch) -> int:
    # executemany pipelines the rows (one round trip for all of them).
    n = 0
    with conn.transaction():
        cur = conn.cursor()
        cur.executemany(PS_INSERT_ROW, batch.rows, returning=True)
        while True:
            n += len(cur.fetchall())
            if not cur.nextset():
                break
        conn.execute(PS_ADVANCE, batch.rooms)
    return n


def _ps_pipeline(conn: psycopg.Connection[Any], batch: Batch) -> int:
    # BEGIN, INSERT, UPDATE, COMMIT sent together: one round trip.
    with conn.pipeline():
        with conn.transaction():
            cur = conn.execute(PS_INSERT, batch.columns)
            conn.execute(PS_ADVANCE, batch.rooms)
    return len(cur.fetchall())


def _ps_read(key: str) -> Callable[[psycopg.Connection[Any]], Any]:
    return lambda conn: conn.execute(PS_READ, (key,)).fetchone()


# (c) psycopg sync connection in a worker thread, one hop per transaction.
class PsycopgThread:
    def __init__(self, conns: list[ThreadConn], shape: Callable[..., int]) -> None:
        self.conns = conns
        self.shape = shape
        self.pool = HeldPool(conns)

    async def commit(self, conn_index: int, batch: Batch) -> int:
        n: int = await self.conns[conn_index].call(lambda c: self.shape(c, batch))
        return n

    async def read(self, conn_index: int, key: str) -> Any:
        async with self.pool.get() as c:
            return await c.call(_ps_read(key))


class TrioAsyncConnection(psycopg.AsyncConnection[Any]):
    """psycopg's async connection with its waits done by trio instead of
    asyncio. NOT supported by psycopg (issue psycopg/psycopg#29 is open, the
    anyio PR #146 was closed): this overrides ``wait``, an internal hook, and
    relies on ``asyncio.Lock`` never touching a loop while uncontended (one
    task per connection). An experiment to see what native async would cost."""

    async def wait(
        self,
        gen: PQGen[Any],
        interval: float = 0.0,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg's signature
    ) -> Any:
        fileno = self.pgconn.socket
        try:
            s = next(gen)
            while True:
                if s & Wait.W:
                    r, w, _ = select.select([fileno] if s & Wait.R else [], [fileno], [], 0)
                    if r or w:
                        s = gen.send((Ready.R if r else 0) | (Ready.W if w else 0))
                        continue
                    await trio.lowlevel.wait_writable(fileno)
                    s = gen.send(Ready.W)
                else:
                    await trio.lowlevel.wait_readable(fileno)
                    s = gen.send(Ready.R)
        except StopIteration as ex:
            return ex.value
        except trio.Cancelled:
            # Left mid-protocol: psycopg would treat an asyncio cancellation
            # by cancelling the query server-side; trio's is not one of the
            # exceptions it knows, so do it here or the connection is stuck.
            if self.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.pgconn.get_cancel().cancel)
                    try:
                        await self.wait(gen)
                    except psycopg.errors.QueryCanceled:
                        pass
            raise

    @classmethod
    async def connect_trio(cls, conninfo: str) -> TrioAsyncConnection:
        # psycopg's connect() resolves and waits with asyncio: connect in a
        # thread with libpq and wrap the result.
        pgconn = await trio.to_thread.run_sync(pq.PGconn.connect, conninfo.encode())
        if pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError(pgconn.get_error_message())
        conn = cls(pgconn)
        conn._autocommit = True
        return conn


# (d) psycopg async core driven from trio, one connection per committer.
class PsycopgTrio:
    def __init__(self, conns: list[TrioAsyncConnection]) -> None:
        self.conns = conns
        self.pool = HeldPool(conns)

    async def commit(self, conn_index: int, batch: Batch) -> int:
        conn = self.conns[conn_index]
        async with conn.transaction():
            cur = await conn.execute(PS_INSERT, batch.columns)
            inserted = await cur.fetchall()
            await conn.execute(PS_ADVANCE, batch.rooms)
        return len(inserted)

    async def read(self, conn_index: int, key: str) -> Any:
        async with self.pool.get() as c:
            cur = await c.execute(PS_READ, (key,))
            return await cur.fetchone()


# --- opening variants (trio) ------------------------------------------------


@asynccontextmanager
async def open_trio_variant(name: str, dsn: str, conns: int) -> AsyncIterator[Driver]:
    if name in ("a", "b"):
        async with trio_asyncio.open_loop() as loop:
            if name == "a":
                pool = await trio_asyncio.aio_as_trio(asyncpg.create_pool, loop=loop)(
                    dsn, min_size=conns, max_size=conns
                )
                try:
                    yield AsyncpgPerStatement(loop, pool)
                finally:
                    await trio_asyncio.aio_as_trio(pool.close, loop=loop)()
            else:
                cs = [
                    await trio_asyncio.aio_as_trio(asyncpg.connect, loop=loop)(dsn)
                    for _ in range(conns)
                ]
                try:
                    yield AsyncpgPerTransaction(loop, cs)
                finally:
                    for c in cs:
                        await trio_asyncio.aio_as_trio(c.close, loop=loop)()
        return
    info = libpq_conninfo(dsn)
    if name.startswith("c"):
        shape = {
            "c-unnest": _ps_unnest,
            "c-bin": _ps_unnest_binary,
            "c-many": _ps_executemany,
            "c-pipe": _ps_pipeline,
        }.get(name, _ps_unnest)
        sync = [
            await trio.to_thread.run_sync(lambda: psycopg.connect(info, autocommit=True))
            for _ in range(conns)
        ]
        try:
            yield PsycopgThread([ThreadConn(c) for c in sync], shape)
        finally:
            for c in sync:
                c.close()
        return
    if name == "d":
        ac = [await TrioAsyncConnection.connect_trio(info) for _ in range(conns)]
        try:
            yield PsycopgTrio(ac)
        finally:
            for c in ac:
                c.pgconn.finish()
        return
    raise ValueError(name)


# --- measuring ---------------------------------------------------------------


@dataclass
class Sample:
    ops: int
    rows: int
    wall: float
    cpu: float
    concurrency: int


async def _trio_measure(
    op: Callable[[int, int], Awaitable[int]], concurrency: int, seconds: float
) -> Sample:
    ops = rows = 0

    async def worker(i: int, deadline: float) -> None:
        nonlocal ops, rows
        k = 0
        while trio.current_time() < deadline:
            rows += await op(i, k)
            ops += 1
            k += 1

    # warm-up (statement caches, prepared statements)
    async with trio.open_nursery() as n:
        for i in range(concurrency):
            n.start_soon(worker, i, trio.current_time() + 0.2)
    ops = rows = 0
    w0, c0 = time.perf_counter(), time.process_time()
    async with trio.open_nursery() as n:
        for i in range(concurrency):
            n.start_soon(worker, i, trio.current_time() + seconds)
    return Sample(ops, rows, time.perf_counter() - w0, time.process_time() - c0, concurrency)


async def _asyncio_measure(
    op: Callable[[int, int], Awaitable[int]], concurrency: int, seconds: float
) -> Sample:
    ops = rows = 0
    loop = asyncio.get_running_loop()

    async def worker(i: int, deadline: float) -> None:
        nonlocal ops, rows
        k = 0
        while loop.time() < deadline:
            rows += await op(i, k)
            ops += 1
            k += 1

    await asyncio.gather(*(worker(i, loop.time() + 0.2) for i in range(concurrency)))
    ops = rows = 0
    w0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(i, loop.time() + seconds) for i in range(concurrency)))
    return Sample(ops, rows, time.perf_counter() - w0, time.process_time() - c0, concurrency)


def measure_commit(name: str, dsn: str, n: int, committers: int, seconds: float) -> Sample:
    writers = [Committer(i, n) for i in range(committers)]

    async def op_for(driver: Driver) -> Callable[[int, int], Awaitable[int]]:
        async def op(i: int, _k: int) -> int:
            return await driver.commit(i, writers[i].batch())

        return op

    if name == "e":

        async def floor() -> Sample:
            cs = [await asyncpg.connect(dsn) for _ in range(committers)]

            async def op(i: int, _k: int) -> int:
                return await _asyncpg_txn(cs[i], writers[i].batch())

            try:
                return await _asyncio_measure(op, committers, seconds)
            finally:
                for c in cs:
                    await c.close()

        return _asyncio_run(floor())

    async def main() -> Sample:
        async with open_trio_variant(name, dsn, committers) as driver:
            return await _trio_measure(await op_for(driver), committers, seconds)

    return trio.run(main)


def measure_read(name: str, dsn: str, concurrency: int, seconds: float) -> Sample:
    keys = read_ids()
    conns = 1 if concurrency == 1 else 4

    def key(i: int, k: int) -> str:
        return keys[(i * 7919 + k * 31) % READ_ROWS]

    if name == "e":

        async def floor() -> Sample:
            # Held connections like (b), not asyncpg's pool: its release
            # resets the connection, one more round trip per query.
            cs = [await asyncpg.connect(dsn) for _ in range(conns)]
            held: asyncio.Queue[Any] = asyncio.Queue()
            for c in cs:
                held.put_nowait(c)

            async def op(i: int, k: int) -> int:
                c = await held.get()
                try:
                    await c.fetchrow(PG_READ, key(i, k))
                finally:
                    held.put_nowait(c)
                return 1

            try:
                return await _asyncio_measure(op, concurrency, seconds)
            finally:
                for c in cs:
                    await c.close()

        return _asyncio_run(floor())

    async def main() -> Sample:
        async with open_trio_variant(name, dsn, conns) as driver:

            async def op(i: int, k: int) -> int:
                await driver.read(i, key(i, k))
                return 1

            return await _trio_measure(op, concurrency, seconds)

    return trio.run(main)


def _asyncio_run(coro: Coroutine[Any, Any, Sample]) -> Sample:
    if uvloop is not None:
        result: Sample = uvloop.run(coro)
        return result
    return asyncio.run(coro)


# --- cancellation -------------------------------------------------------------


def cancel_check(name: str, dsn: str) -> str:
    """Cancel a trio scope 0.2 s into ``SELECT pg_sleep(2)`` inside a
    transaction; report how long leaving took and whether the connection then
    works and is idle (not in a transaction)."""

    async def main() -> str:
        async with open_trio_variant(name, dsn, 1) as driver:
            sleep_batch = Batch([], (), ([], [], []))
            t0 = time.perf_counter()
            with trio.move_on_after(0.2):
                await _sleep_in(driver, sleep_batch)
            left = time.perf_counter() - t0
            t1 = time.perf_counter()
            try:
                await driver.read(0, "read-1")
                after = f"next query ok in {(time.perf_counter() - t1) * 1e3:.0f} ms"
            except Exception as exc:  # noqa: BLE001 - reported, not handled
                after = f"next query fails: {type(exc).__name__}"
            return f"left the scope after {left * 1e3:.0f} ms; {after}"

    return trio.run(main)


async def _sleep_in(driver: Driver, _b: Batch) -> None:
    sql = "SELECT pg_sleep(2)"
    match driver:
        case AsyncpgPerStatement():
            await driver.run(driver.pool.execute, sql)
        case AsyncpgPerTransaction():

            async def txn(c: Any) -> None:
                async with c.transaction():
                    await c.execute(sql)

            await trio_asyncio.aio_as_trio(txn, loop=driver.loop)(driver.conns[0])
        case PsycopgThread():

            def txn_sync(c: psycopg.Connection[Any]) -> None:
                with c.transaction():
                    c.execute(sql)

            await driver.conns[0].call(txn_sync)
        case PsycopgTrio():
            async with driver.conns[0].transaction():
                await driver.conns[0].execute(sql)
        case _:
            raise TypeError(driver)


# --- schema and main ---------------------------------------------------------


@contextmanager
def scratch_schema(dsn: str, committers: int) -> Iterator[str]:
    schema = f"bench_drivers_{os.getpid()}"
    with psycopg.connect(libpq_conninfo(dsn), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"SET search_path = {schema}")
            conn.execute(SCHEMA_SQL)
            rooms = [r for i in range(committers) for r in Committer(i, 1).rooms()]
            conn.execute("INSERT INTO rooms SELECT unnest(%s::text[]), 0, NULL", (rooms,))
            conn.execute(
                "INSERT INTO messages SELECT 'read-' || i, 'read-room', i, 'u', 'read-' || i,"
                " 'a message to read', 0 FROM generate_series(0, %s) AS i",
                (READ_ROWS - 1,),
            )
            conn.execute("ANALYZE")
            yield schema
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def reset_messages(dsn: str) -> None:
    # Keep the table from growing across cells, so later cells do not pay
    # for a bigger index: drop written rows, keep the read rows.
    with psycopg.connect(libpq_conninfo(dsn), autocommit=True) as conn:
        conn.execute("DELETE FROM messages WHERE room_id <> 'read-room'")
        conn.execute("UPDATE rooms SET last_seq = 0")
        conn.execute("VACUUM messages, rooms")


LABELS = {
    "a": "(a) asyncpg/trio-asyncio, crossing+pool per statement",
    "b": "(b) asyncpg/trio-asyncio, 1 crossing per txn, held conn",
    "c-unnest": "(c) psycopg sync in thread, 1 hop/txn, unnest",
    "c-bin": "(c) psycopg sync in thread, 1 hop/txn, unnest, binary",
    "c-many": "(c) psycopg sync in thread, 1 hop/txn, executemany",
    "c-pipe": "(c) psycopg sync in thread, 1 hop/txn, unnest in pipeline",
    "d": "(d) psycopg async on trio (unsupported hook), unnest",
    "e": "(e) floor: asyncpg on asyncio+uvloop, held conn, no trio",
}
COMMIT_VARIANTS = ["a", "b", "c-unnest", "c-bin", "c-many", "c-pipe", "d", "e"]
READ_VARIANTS = ["a", "b", "c-unnest", "d", "e"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement")
    parser.add_argument("--reps", type=int, default=3, help="median of this many")
    parser.add_argument("--sizes", default="1,20,200")
    parser.add_argument("--variants", default=",".join(COMMIT_VARIANTS))
    parser.add_argument(
        "--no-fsync-wait",
        action="store_true",
        help="synchronous_commit=off (through the DSN), to see driver costs without the fsync",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    chosen = args.variants.split(",")
    floor_loop = "asyncio+uvloop" if uvloop is not None else "asyncio"
    with scratch_schema(args.dsn, 4) as schema:
        dsn = with_search_path(args.dsn, schema)
        if args.no_fsync_wait:
            dsn += "&synchronous_commit=off"
        print(f"dsn {dsn}; floor on {floor_loop}; {args.seconds}s x {args.reps} reps")
        commit_cells = [
            (v, n, k) for n in sizes for k in (1, 4) for v in COMMIT_VARIANTS if v in chosen
        ]
        read_cells = [(v, k) for k in (1, 16) for v in READ_VARIANTS if v in chosen]
        commits: dict[tuple[str, int, int], list[Sample]] = {c: [] for c in commit_cells}
        reads: dict[tuple[str, int], list[Sample]] = {c: [] for c in read_cells}
        # Repetitions interleave the variants, so a noisy moment on the
        # machine spreads over all of them instead of sinking one.
        for _rep in range(args.reps):
            for v, n, k in commit_cells:
                reset_messages(dsn)
                commits[(v, n, k)].append(measure_commit(v, dsn, n, k, args.seconds))
            for v, k in read_cells:
                reads[(v, k)].append(measure_read(v, dsn, k, args.seconds))
        print_tables(commits, reads)
        print("\ncancellation (trio scope cancelled 0.2 s into pg_sleep(2) in a transaction):")
        for v in ("a", "b", "c-unnest", "d"):
            if v in chosen:
                print(f"  {LABELS[v]}: {cancel_check(v, dsn)}")


def _median(samples: list[Sample], f: Callable[[Sample], float]) -> float:
    return statistics.median(f(s) for s in samples)


def print_tables(
    commits: dict[tuple[str, int, int], list[Sample]], reads: dict[tuple[str, int], list[Sample]]
) -> None:
    print("\nhot path: one transaction = insert N messages (unnest/ON CONFLICT/RETURNING)")
    print("          + advance each room's last_seq; medians; ratio = commits/s vs (a)")
    head = f"{'variant':<60} {'N':>4} {'conc':>4} {'commits/s':>10} {'rows/s':>9}"
    print(head + f" {'CPU us/row':>10} {'wall us/commit':>14} {'ratio':>6}")
    for (v, n, k), ss in commits.items():
        cps = _median(ss, lambda s: s.ops / s.wall)
        base = commits.get(("a", n, k))
        ratio = cps / _median(base, lambda s: s.ops / s.wall) if base else float("nan")
        print(
            f"{LABELS[v]:<60} {n:>4} {k:>4} {cps:>10,.0f}"
            f" {_median(ss, lambda s: s.rows / s.wall):>9,.0f}"
            f" {_median(ss, lambda s: s.cpu / max(s.rows, 1) * 1e6):>10.1f}"
            f" {_median(ss, lambda s: s.wall * s.concurrency / max(s.ops, 1) * 1e6):>14,.0f}"
            f" {ratio:>6.2f}"
        )
    print("\npoint read by primary key: 1 task on 1 connection, 16 tasks on 4 connections")
    print(f"{'variant':<60} {'tasks':>5} {'ops/s':>9} {'CPU us/op':>10} {'ratio':>6}")
    for (v, k), ss in reads.items():
        ops = _median(ss, lambda s: s.ops / s.wall)
        base = reads.get(("a", k))
        ratio = ops / _median(base, lambda s: s.ops / s.wall) if base else float("nan")
        label = LABELS[v].replace(", unnest", "").replace("1 hop/txn", "1 hop/op")
        print(
            f"{label:<60} {k:>5} {ops:>9,.0f}"
            f" {_median(ss, lambda s: s.cpu / max(s.ops, 1) * 1e6):>10.1f} {ratio:>6.2f}"
        )


if __name__ == "__main__":
    main()
