"""The public plan list, and the plan and quota in the socket's welcome."""

from __future__ import annotations

import httpx

from protocol.client import open_client
from realtime_server.node import Node
from tests.billing.fake_konnect import FakeKonnect
from tests.billing.fake_stripe import FakeStripe
from tests.billing.helpers import subscribe_with_konnect, subscribe_with_stripe
from tests.conftest import NodeFactory
from tests.e2e.helpers import register


async def test_the_plan_list_is_public_with_prices_limits_and_models(api: httpx.AsyncClient):
    r = await api.get("/billing/plans")
    assert r.status_code == 200, r.text
    plans = {p["name"]: p for p in r.json()["plans"]}
    assert list(plans) == ["free", "basic", "premium"]
    assert plans["free"] == {
        "name": "free",
        "price_millimes": 0,
        "currency": "TND",
        "ai_monthly": 20,
        "ai_daily": None,
        "models": ["gpt-4o-mini"],
        "stripe": False,
        "konnect": False,
    }
    assert (plans["basic"]["price_millimes"], plans["basic"]["ai_monthly"]) == (30_000, 100)
    assert (plans["premium"]["price_millimes"], plans["premium"]["ai_monthly"]) == (60_000, 1000)
    assert plans["premium"]["models"] == ["*"]
    assert plans["basic"]["stripe"] and plans["basic"]["konnect"]


async def test_plans_and_limits_follow_the_settings(node_factory: NodeFactory):
    async with node_factory(plan_basic_ai_daily=10, plan_premium_price_millimes=75_000) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as api:
            plans = {p["name"]: p for p in (await api.get("/billing/plans")).json()["plans"]}
    assert plans["basic"]["ai_daily"] == 10
    assert plans["premium"]["price_millimes"] == 75_000


async def test_the_welcome_frame_carries_the_plan_and_remaining_quota(
    api: httpx.AsyncClient, billing_node: Node, stripe_server: FakeStripe
):
    alice = await register(api)
    quota = billing_node.gateway.services.quota
    assert await quota.try_consume(alice.id, 5)
    async with open_client(billing_node.ws_url, alice.access_token) as client:
        plan = client.welcome.plan
    assert plan is not None
    assert (plan.name, plan.ai_left, plan.ai_month, plan.ai_month_used) == ("free", 15, 20, 5)
    assert plan.models == ["gpt-4o-mini"] and not plan.ending

    await subscribe_with_stripe(api, stripe_server, alice, "premium")
    assert await quota.try_consume(alice.id, 3)
    async with open_client(billing_node.ws_url, alice.access_token) as client:
        plan = client.welcome.plan
    assert plan is not None
    assert (plan.name, plan.ai_left, plan.ai_month, plan.ai_month_used) == ("premium", 997, 1000, 3)
    summary = await quota.summary(alice.id)
    assert plan.resets == summary.resets_at and plan.models == ["*"]


async def test_the_welcome_shows_a_daily_cap_and_a_cancelled_plan(
    node_factory: NodeFactory, billing_settings: dict[str, object], konnect_server: FakeKonnect
):
    async with node_factory(**{**billing_settings, "plan_basic_ai_daily": 4}) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as api:
            alice = await register(api)
            await subscribe_with_konnect(api, konnect_server, alice, "basic")
            await node.gateway.services.quota.try_consume(alice.id, 3)
            await api.post(
                "/billing/cancel", headers={"Authorization": f"Bearer {alice.access_token}"}
            )
            async with open_client(node.ws_url, alice.access_token) as client:
                plan = client.welcome.plan
    assert plan is not None
    assert (plan.name, plan.ai_day, plan.ai_day_used, plan.ai_left) == ("basic", 4, 3, 1)
    assert plan.ending


async def test_openapi_documents_every_billing_route_and_how_it_fails(api: httpx.AsyncClient):
    document = (await api.get("/openapi.json")).json()
    routes = {
        (method, path)
        for path, item in document["paths"].items()
        if path.startswith("/billing")
        for method in item
    }
    assert routes == {
        ("get", "/billing/plans"),
        ("get", "/billing/subscription"),
        ("post", "/billing/stripe/checkout"),
        ("post", "/billing/stripe/portal"),
        ("post", "/billing/stripe/webhook"),
        ("post", "/billing/konnect/checkout"),
        ("get", "/billing/konnect/webhook"),
        ("get", "/billing/konnect/payments/{payment_ref}"),
        ("post", "/billing/cancel"),
        ("get", "/billing/payments"),
        ("get", "/billing/return"),
    }
    checkout = document["paths"]["/billing/stripe/checkout"]["post"]["responses"]
    assert {"200", "201", "400", "401", "409", "503"} <= set(checkout)
    assert document["paths"]["/billing/plans"]["get"]["security"] == []
    assert document["paths"]["/billing/stripe/webhook"]["post"]["security"] == []
