"""Fixtures of the push tests (issue 15, part 3): a local Google (OAuth and FCM)
and a node pushing to it; ``make_user`` from tests/storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from realtime_server.node import Node
from tests.conftest import NodeFactory
from tests.push.google import Google, open_google
from tests.storage.conftest import make_user

__all__ = ["make_user"]


@pytest.fixture
async def google() -> AsyncIterator[Google]:
    async with open_google() as g:
        yield g


@pytest.fixture
async def push_node(
    node_factory: NodeFactory, google: Google, tmp_path: Path
) -> AsyncIterator[Node]:
    account = google.service_account(tmp_path / "firebase.json")
    async with node_factory(
        fcm_service_account=str(account), fcm_url=google.url, push_backoff=0.01
    ) as n:
        yield n


@pytest.fixture
async def api(push_node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=push_node.http_url, timeout=10) as client:
        yield client
