"""Several nodes for the cluster tests (issue 13).

- ``cluster_url``: one fresh, migrated PostgreSQL schema the nodes share
  (several nodes need PostgreSQL; the embedded SQLite default is one node by
  design), from the same pool as ``database_url``.
- ``local_cluster``: N nodes in THIS process joined by an in-process bus
  (``LocalBusNetwork``), each with its own port, sharing ``cluster_url``. It
  tests the cluster logic fast; ``tests/cluster/processes.py`` starts real
  node processes on Redis for the end-to-end and chaos tests.
- ``redis_url``: the local Redis, checked once; absent, the tests skip with
  the reason, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from realtime_server.cluster.bus import LocalBusNetwork
from realtime_server.node import Node, open_node
from tests.cluster.processes_fixture import (  # noqa: F401 - pytest looks them up here
    node_processes,
    pytest_runtest_makereport,
)
from tests.conftest import IN_CI, postgres_schema, test_settings
from tests.schema_pool import SchemaPool

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(16).startswith(b"+PONG"):
                raise ConnectionError("no PONG")
    except Exception as exc:
        message = f"Redis not reachable at {REDIS_URL}: {exc!r}"
        if IN_CI:
            pytest.fail(message + " (CI=true: Redis tests must run, not skip)")
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def cluster_url(postgres_schemas: SchemaPool) -> Iterator[str]:
    with postgres_schema(postgres_schemas) as url:
        yield url


class Nodes(list[Node]):
    """The started nodes; ``await nodes.stop(i)`` stops one gracefully while
    the others go on (its leases are released: its rooms move at once)."""

    def __init__(self) -> None:
        super().__init__()
        self._stop: list[trio.Event] = []
        self._stopped: list[trio.Event] = []

    async def stop(self, i: int) -> None:
        self._stop[i].set()
        await self._stopped[i].wait()


Started = tuple[LocalBusNetwork, Nodes]
LocalCluster = Callable[..., AbstractAsyncContextManager[Started]]


@pytest.fixture
def local_cluster(cluster_url: str, tmp_path: Path, _real_io_deadline: None) -> LocalCluster:
    """``async with local_cluster(3, **settings) as (network, nodes)``.

    The nodes share the JWT secret (test_settings), so a token from one is
    good on every other, as behind a load balancer.
    """

    @asynccontextmanager
    async def start(
        n: int = 2, **overrides: Any
    ) -> AsyncIterator[tuple[LocalBusNetwork, list[Node]]]:
        network = LocalBusNetwork()
        nodes = Nodes()

        async def run(i: int, *, task_status: trio.TaskStatus[Node]) -> None:
            settings = test_settings(
                cluster_url, tmp_path / "data", node_id=f"node{i}", **overrides
            )
            bus = network.attach(f"node{i}/{secrets.token_hex(3)}")
            try:
                async with open_node(settings, bus=bus) as node:
                    task_status.started(node)
                    await nodes._stop[i].wait()
            finally:
                nodes._stopped[i].set()

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nodes._stop.append(trio.Event())
                nodes._stopped.append(trio.Event())
                nodes.append(await nursery.start(run, i))
            try:
                yield network, nodes
            finally:
                # Stopped one by one, last first, like a rolling shutdown.
                for i in reversed(range(n)):
                    await nodes.stop(i)

    return start


@pytest.fixture
async def two_nodes(
    local_cluster: LocalCluster,
) -> AsyncIterator[tuple[LocalBusNetwork, list[Node]]]:
    async with local_cluster(2) as started:
        yield started


__all__ = ["LocalCluster", "Nodes", "Started", "trio"]
