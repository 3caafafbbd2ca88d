"""Fixtures of the push tests (issue 15, part 3): a local Google (OAuth and FCM),
a local Apple (APNs over HTTP/2) and a node pushing to both; ``make_user`` from tests/storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from realtime_server.node import Node
from tests.conftest import NodeFactory
from tests.push.apple import KEY_ID, TEAM_ID, Apple, open_apple
from tests.push.google import Google, open_google
from tests.storage.conftest import make_user

__all__ = ["make_user"]


@pytest.fixture
async def google() -> AsyncIterator[Google]:
    async with open_google() as g:
        yield g


@pytest.fixture
async def apple() -> AsyncIterator[Apple]:
    async with open_apple() as a:
        yield a


@pytest.fixture
async def push_node(
    node_factory: NodeFactory, google: Google, apple: Apple, tmp_path: Path
) -> AsyncIterator[Node]:
    account = google.service_account(tmp_path / "firebase.json")
    async with node_factory(
        fcm_service_account=str(account),
        fcm_url=google.url,
        apns_key_file=str(apple.key_file(tmp_path / "AuthKey.p8")),
        apns_key_id=KEY_ID,
        apns_team_id=TEAM_ID,
        apns_url=apple.url,
        push_backoff=0.01,
        call_ring_seconds=0.3,
    ) as n:
        yield n


@pytest.fixture
async def api(push_node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=push_node.http_url, timeout=10) as client:
        yield client
