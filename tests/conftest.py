"""Database fixtures shared by every test package.

- ``database_url``: a fresh database per test, already migrated, once on
  SQLite and once on PostgreSQL (ids ``sqlite`` / ``postgres``). SQLite gets
  a copy of a template file migrated once per session (a file copy instead
  of 17 migrations). PostgreSQL gets a new schema of its own, selected with
  ``?search_path=`` (asyncpg sends unknown DSN parameters as server
  settings), that a thread migrated ahead of time and drops afterwards
  (``tests/schema_pool.py`` says why not a template database).
- ``empty_database_url``: the same, but empty, for the tests of ``migrate()``
  itself, which must start from nothing.
- ``store``: a migrated ``Store`` opened on ``database_url``.
- ``postgres_dsn``: the server-level DSN (env ``TEST_POSTGRES_DSN``), checked
  once per session. When the server is unreachable PostgreSQL tests skip,
  except with ``CI=true``, where they fail: CI must never go green by
  silently skipping one backend.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from protocol.harness.server import pg_execute, with_search_path
from realtime_server.base.clock import Clock
from realtime_server.base.settings import Settings
from realtime_server.node import Node, open_node
from storage.base import Store
from storage.sql.factory import open_store
from tests.schema_pool import SchemaPool

POSTGRES_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _redacted(dsn: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    try:
        pg_execute(POSTGRES_DSN, "SELECT 1")
    except Exception as exc:  # any failure to reach it counts as "absent"
        message = f"PostgreSQL not reachable at {_redacted(POSTGRES_DSN)}: {exc!r}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run, not skip)")
        pytest.skip(message)
    return POSTGRES_DSN


def _migrate(database_url: str) -> None:
    async def run() -> None:
        async with open_store(database_url) as opened:
            await opened.migrate()

    # Called outside the tests' trio runs (session fixtures, the pool's thread).
    trio.run(run)


@pytest.fixture(scope="session")
def postgres_schemas(postgres_dsn: str) -> Iterator[SchemaPool]:
    pool = SchemaPool(postgres_dsn, _migrate)
    try:
        yield pool
    finally:
        pool.close()


@contextmanager
def postgres_schema(pool: SchemaPool) -> Iterator[str]:
    """A fresh migrated schema's URL, for one test; dropped after it, off its clock."""
    schema = pool.take()
    try:
        yield pool.url(schema)
    finally:
        pool.give_back(schema)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "t.db"
    _migrate(f"sqlite:///{path}")
    # The last connection's close checkpointed the WAL into the file, so the
    # file alone is the whole database.
    assert not Path(f"{path}-wal").exists(), "the template's WAL was not checkpointed"
    return path


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    ids=["sqlite", "postgres"],
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, tmp_path / "t.db")
        yield f"sqlite:///{tmp_path}/t.db"
        return
    with postgres_schema(request.getfixturevalue("postgres_schemas")) as url:
        yield url


@pytest.fixture
def empty_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/t.db"
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = f"t_{secrets.token_hex(6)}"
    pg_execute(dsn, f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(dsn, schema)
    finally:
        pg_execute(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with open_store(database_url) as opened:
        await opened.migrate()
        yield opened


# ----- a whole node on loopback ------------------------------------------------
# ``node_factory`` starts nodes (REST + /ws on one port) on ``database_url``;
# closing one and starting another on the same URL is how restart tests work.
# Every package's end-to-end tests use these.


def test_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    base = Settings(
        host="127.0.0.1",
        port=0,
        database_url=database_url,
        data_dir=str(data_dir),
        jwt_secret="test-secret-" + "x" * 32,
        # argon2 at its cheapest: the tests exercise the flow, not the cost.
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        sqlite_synchronous="NORMAL",
    )
    return base.replace(**overrides)


NodeFactory = Callable[..., AbstractAsyncContextManager[Node]]


@pytest.fixture
def node_factory(database_url: str, tmp_path: Path, _real_io_deadline: None) -> NodeFactory:
    @asynccontextmanager
    async def factory(clock: Clock | None = None, **overrides: Any) -> AsyncIterator[Node]:
        # ``clock``: a ManualClock moves the node's wall-time rules without waiting.
        settings = test_settings(database_url, tmp_path / "data", **overrides)
        async with open_node(settings, clock=clock) as node:
            yield node

    return factory


@pytest.fixture
async def node(node_factory: NodeFactory) -> AsyncIterator[Node]:
    async with node_factory() as n:
        yield n


@pytest.fixture
async def http(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
        yield client


E2E_DEADLINE = 60.0


@pytest.fixture
async def _real_io_deadline(nursery: trio.Nursery) -> AsyncIterator[None]:
    """Every e2e test does real I/O: none may hang the suite."""

    async def watchdog() -> None:
        await trio.sleep(E2E_DEADLINE)
        raise TimeoutError(f"test still running after {E2E_DEADLINE:g}s")

    nursery.start_soon(watchdog)
    yield
