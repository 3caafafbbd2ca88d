"""A node whose clock the test moves (issue 18): mute expiry without sleeping.

The clock is the real time plus an offset the test advances, so messages
stored at real time and settings changed on the node's clock stay ordered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from realtime_server.base.clock import WallClock
from realtime_server.node import Node, open_node
from storage.base import now_ms
from tests.conftest import test_settings


class ManualClock(WallClock):
    """The node's clock (actors.room_expiry.Clock): real time plus an offset."""

    def __init__(self) -> None:
        self.offset = 0

    def now_ms(self) -> int:
        return now_ms() + self.offset

    def __call__(self) -> int:
        return self.now_ms()

    def advance(self, ms: int) -> None:
        self.offset += ms

    async def sleep_until(self, at_ms: int) -> None:
        # Real time moves this clock too: wait out what is left on it (once
        # more if woken early, as the wall clock does).
        for _ in range(2):
            left = at_ms - self.now_ms()
            if left <= 0:
                return
            await trio.sleep(left / 1000)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def node(
    database_url: str, tmp_path: Path, clock: ManualClock, _real_io_deadline: None
) -> AsyncIterator[Node]:
    # Tokens count on the node's clock too: they outlive the years it is moved.
    settings = test_settings(database_url, tmp_path / "data", access_token_ttl=10**9)
    async with open_node(settings, clock=clock) as n:
        yield n


@pytest.fixture
async def http(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
        yield client
