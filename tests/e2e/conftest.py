"""A whole node on loopback (REST + /ws on one port) over real storage.

``node_factory`` starts nodes on the parametrized ``database_url`` (SQLite file
and PostgreSQL schema, from tests/conftest.py); starting a second node on the
same URL after closing the first is how restart tests work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from realtime_server.node import Node, open_node
from realtime_server.settings import Settings


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
def node_factory(database_url: str, tmp_path: Path) -> NodeFactory:
    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Node]:
        async with open_node(test_settings(database_url, tmp_path / "data", **overrides)) as node:
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


@pytest.fixture(autouse=True)
async def _real_io_deadline(nursery: trio.Nursery) -> AsyncIterator[None]:
    """Every e2e test does real I/O: none may hang the suite."""

    async def watchdog() -> None:
        await trio.sleep(E2E_DEADLINE)
        raise TimeoutError(f"test still running after {E2E_DEADLINE:g}s")

    nursery.start_soon(watchdog)
    yield
