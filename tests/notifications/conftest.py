"""A node with short timers for the notification tests (issue 15, part 2).

Stats tick every ADMIN_STATS_INTERVAL = 0.1 s and calls ring 0.3 s, so no test
waits long on the wall clock. The billing fixtures (local Stripe and
Konnect) come from tests/billing for the payment notifications, ``make_user``
from tests/storage for the store's own tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from realtime_server.node import Node
from tests.billing.conftest import billing_settings, konnect_server, stripe_server
from tests.conftest import NodeFactory
from tests.storage.conftest import make_user

__all__ = ["billing_settings", "konnect_server", "make_user", "stripe_server"]

FAST = {"admin_stats_interval": 0.1, "call_ring_seconds": 0.3}


@pytest.fixture
async def node(node_factory: NodeFactory) -> AsyncIterator[Node]:
    async with node_factory(**FAST) as n:
        yield n


@pytest.fixture
async def billing_node(
    node_factory: NodeFactory, billing_settings: dict[str, Any]
) -> AsyncIterator[Node]:
    async with node_factory(**FAST, **billing_settings) as n:
        yield n


@pytest.fixture
async def api(billing_node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=billing_node.http_url, timeout=10) as client:
        yield client
