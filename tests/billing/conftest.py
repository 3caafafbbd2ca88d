"""Fixtures: local Stripe and Konnect servers, and a node whose billing points at them.

Both servers run in the test's nursery on loopback; ``billing_node`` is a
whole node (REST + /ws) from the shared ``node_factory``, so every test here
runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from realtime_server.node import Node
from tests.billing.fake_konnect import API_KEY as KONNECT_KEY
from tests.billing.fake_konnect import WALLET, FakeKonnect
from tests.billing.fake_stripe import API_KEY as STRIPE_KEY
from tests.billing.fake_stripe import WEBHOOK_SECRET, FakeStripe
from tests.conftest import NodeFactory


@pytest.fixture
async def stripe_server(nursery: trio.Nursery) -> FakeStripe:
    fake = FakeStripe()
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def konnect_server(nursery: trio.Nursery) -> FakeKonnect:
    fake = FakeKonnect()
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
def billing_settings(stripe_server: FakeStripe, konnect_server: FakeKonnect) -> dict[str, Any]:
    return {
        "stripe_secret_key": STRIPE_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": stripe_server.url,
        "stripe_timeout": 1.0,
        "stripe_max_retries": 0,
        "plan_basic_stripe_price": "price_basic",
        "plan_premium_stripe_price": "price_premium",
        "konnect_api_key": KONNECT_KEY,
        "konnect_wallet_id": WALLET,
        "konnect_api_base": konnect_server.api_base,
        "konnect_timeout": 1.0,
    }


@pytest.fixture
async def billing_node(
    node_factory: NodeFactory, billing_settings: dict[str, Any]
) -> AsyncIterator[Node]:
    async with node_factory(**billing_settings) as node:
        yield node


@pytest.fixture
async def api(billing_node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=billing_node.http_url, timeout=10) as client:
        yield client
