"""The ``node_processes`` fixture (imported by ``tests/cluster/conftest.py``).

``async with node_processes(3, **settings) as nodes`` runs real node
processes (``tests.cluster.processes``) on ``cluster_url`` and ``redis_url``;
a failing test's report ends with the tail of each node's log.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.processes import NodeProcesses, create_node_processes

NodeProcessesFactory = Callable[..., AbstractAsyncContextManager[NodeProcesses]]
_STARTED = pytest.StashKey[list[NodeProcesses]]()


@pytest.fixture
def node_processes(
    cluster_url: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> NodeProcessesFactory:
    """``async with node_processes(3, **settings) as nodes``: real node processes.

    Each use gets its own Redis prefix, so tests sharing the Redis never hear
    each other. ``bus=False`` starts nodes without REDIS_URL (each one alone
    on the shared schema): only for tests of the process handling itself.
    """
    started = request.node.stash.setdefault(_STARTED, [])

    @asynccontextmanager
    async def start(
        n: int = 3, *, bus: bool = True, **overrides: Any
    ) -> AsyncIterator[NodeProcesses]:
        nodes = create_node_processes(
            n,
            database_url=cluster_url,
            root=tmp_path / f"nodes{len(started)}",
            redis_url=redis_url if bus else None,
            redis_prefix=f"t{secrets.token_hex(5)}:",
            **overrides,
        )
        started.append(nodes)  # before starting: a node that fails to start shows its log
        async with nodes.running():
            yield nodes

    return start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """A failed test that ran node processes shows the end of each node's log."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed:
        for nodes in item.stash.get(_STARTED, []):
            report.sections.append(("node logs", nodes.log_tails()))
