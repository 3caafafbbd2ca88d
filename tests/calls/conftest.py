"""Fixtures for call tests: an HTTP client for a node started with custom settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from realtime_server.node import Node

HttpFactory = Callable[[Node], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def http_factory() -> HttpFactory:
    @asynccontextmanager
    async def factory(node: Node) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
            yield client

    return factory
