"""A node on a manual clock for the story tests (issue 15, part 1).

Expiry is 24 hours of the node's one clock: tests ``clock.advance`` past it
instead of waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from realtime_server.base.clock import ManualClock
from realtime_server.node import Node, open_node
from tests.conftest import test_settings


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def node(
    database_url: str, tmp_path: Path, clock: ManualClock, _real_io_deadline: None
) -> AsyncIterator[Node]:
    # Tokens count on the node's clock too: they outlive the days it is moved.
    settings = test_settings(
        database_url, tmp_path / "data", story_max_chars=50, access_token_ttl=10**9
    )
    async with open_node(settings, clock=clock) as n:
        yield n


@pytest.fixture
async def http(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
        yield client
