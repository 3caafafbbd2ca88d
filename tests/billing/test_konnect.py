"""Konnect (TND) payments end to end: a node's REST API against a local Konnect.

Konnect's webhook is an unsigned GET with a payment_ref: the node must re-read
the payment from Konnect and grant the plan only for a completed payment whose
order, amount and currency match.
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from realtime_server.base.clock import ManualClock
from realtime_server.node import Node
from tests.billing.fake_konnect import FakeKonnect
from tests.billing.helpers import (
    konnect_checkout,
    my_subscription,
    subscribe_with_konnect,
)
from tests.conftest import NodeFactory
from tests.e2e.helpers import auth, register

MONTH_MS = 30 * 24 * 3600 * 1000


async def test_a_user_upgrades_through_konnect_for_a_fixed_period(
    api: httpx.AsyncClient, konnect_server: FakeKonnect, billing_node: Node
):
    alice = await register(api)
    checkout = await konnect_checkout(api, alice, "premium")
    assert (checkout["amount_millimes"], checkout["currency"]) == (60_000, "TND")
    assert checkout["pay_url"].startswith("https://gateway.sandbox.konnect.test/")
    [init] = konnect_server.inits
    assert init["receiverWalletId"] and init["token"] == "TND"
    assert (init["amount"], init["orderId"]) == (60_000, checkout["order_id"])
    assert init["webhook"] == f"{billing_node.http_url}/billing/konnect/webhook"

    ref = checkout["payment_ref"]
    early = await konnect_server.notify(ref)  # not paid yet
    assert (early.status_code, early.json()["result"]) == (200, "pending")
    assert (await my_subscription(api, alice))["plan"] == "free"

    konnect_server.pay(ref)
    r = await konnect_server.notify(ref)
    assert (r.status_code, r.json()["result"]) == (200, "activated")
    sub = await my_subscription(api, alice)
    assert (sub["plan"], sub["provider"], sub["quota"]["remaining"]) == ("premium", "konnect", 1000)
    assert sub["period_end"] - sub["period_start"] == MONTH_MS
    quota = billing_node.gateway.services.quota
    assert await quota.try_consume(alice.id, 21)  # more than the free plan allows
    [payment] = (await api.get("/billing/payments", headers=auth(alice))).json()["payments"]
    assert (payment["provider"], payment["reference"], payment["amount"]) == (
        "konnect",
        ref,
        60_000,
    )
    assert (payment["currency"], payment["status"]) == ("TND", "paid")


async def test_the_webhook_and_the_status_endpoint_are_idempotent(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    alice = await register(api)
    ref = await subscribe_with_konnect(api, konnect_server, alice, "basic")
    before = await my_subscription(api, alice)
    again = await konnect_server.notify(ref)
    status = await api.get(f"/billing/konnect/payments/{ref}", headers=auth(alice))
    assert again.json()["result"] == "already_completed"
    assert status.status_code == 200, status.text
    assert status.json()["result"] == "already_completed"
    assert status.json()["order"]["status"] == "completed"
    assert await my_subscription(api, alice) == before
    payments = (await api.get("/billing/payments", headers=auth(alice))).json()["payments"]
    assert len(payments) == 1


async def test_concurrent_notifications_activate_once(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    alice = await register(api)
    ref = (await konnect_checkout(api, alice, "basic"))["payment_ref"]
    konnect_server.pay(ref)
    results: list[str] = []

    async def notify() -> None:
        results.append((await konnect_server.notify(ref)).json()["result"])

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(notify)
    assert sorted(results) == ["activated"] + ["already_completed"] * 4
    sub = await my_subscription(api, alice)
    assert sub["period_end"] - sub["period_start"] == MONTH_MS


async def test_the_status_endpoint_activates_a_payment_whose_webhook_was_lost(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    alice = await register(api)
    ref = (await konnect_checkout(api, alice, "basic"))["payment_ref"]
    konnect_server.pay(ref)
    r = await api.get(f"/billing/konnect/payments/{ref}", headers=auth(alice))
    assert r.status_code == 200, r.text
    assert (r.json()["result"], r.json()["subscription"]["plan"]) == ("activated", "basic")


async def test_an_amount_or_currency_mismatch_grants_nothing(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    for changes in ({"amount": 1_000}, {"token": "EUR"}):
        alice = await register(api)
        checkout = await konnect_checkout(api, alice, "premium")
        ref = checkout["payment_ref"]
        konnect_server.pay(ref)
        konnect_server.tamper(ref, **changes)
        r = await konnect_server.notify(ref)
        assert (r.status_code, r.json()["error"]["code"]) == (409, "conflict")
        assert "nothing was granted" in r.json()["error"]["message"]
        assert (await my_subscription(api, alice))["plan"] == "free"
        # Rejected for good: fixing what Konnect says later grants nothing either.
        konnect_server.tamper(ref, amount=60_000, token="TND")
        assert (await konnect_server.notify(ref)).status_code == 409
        status = await api.get(f"/billing/konnect/payments/{ref}", headers=auth(alice))
        assert status.status_code == 409
        assert (await my_subscription(api, alice))["plan"] == "free"


async def test_webhooks_for_unknown_payments_or_orders_grant_nothing(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    unknown = await api.get("/billing/konnect/webhook", params={"payment_ref": "abc123"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    # A real, completed Konnect payment, but for an order that is not ours.
    async with httpx.AsyncClient(
        base_url=konnect_server.api_base, headers={"x-api-key": "konnect-test-key"}
    ) as merchant:
        r = await merchant.post(
            "/payments/init-payment",
            json={
                "receiverWalletId": "5f7a209aeb3f76490ac4a3d1",
                "amount": 60_000,
                "token": "TND",
                "orderId": "ord_someone_else",
            },
        )
    stranger = r.json()["paymentRef"]
    konnect_server.pay(stranger)
    foreign = await api.get("/billing/konnect/webhook", params={"payment_ref": stranger})
    assert foreign.status_code == 404
    assert "nothing was granted" in foreign.json()["error"]["message"]


async def test_an_expired_unpaid_payment_grants_nothing(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    alice = await register(api)
    ref = (await konnect_checkout(api, alice, "basic"))["payment_ref"]
    konnect_server.expire(ref)
    assert (await konnect_server.notify(ref)).json()["result"] == "expired"
    status = await api.get(f"/billing/konnect/payments/{ref}", headers=auth(alice))
    assert status.json()["order"]["status"] == "expired"
    assert (await my_subscription(api, alice))["plan"] == "free"
    # An expired link is not reused: a new checkout starts a new payment.
    fresh = await konnect_checkout(api, alice, "basic")
    assert fresh["payment_ref"] != ref


async def test_konnect_timeouts_and_5xx_answer_503_and_grant_nothing(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    alice = await register(api)
    konnect_server.hang_next(3)
    slow = await konnect_checkout(api, alice, "basic", expect=503)
    assert "did not answer within" in slow["error"]["message"]
    konnect_server.fail_next(502)
    broken = await konnect_checkout(api, alice, "basic", expect=503)
    assert broken["error"]["code"] == "unavailable"
    assert konnect_server.payments == {}

    ref = (await konnect_checkout(api, alice, "basic"))["payment_ref"]
    konnect_server.pay(ref)
    konnect_server.fail_next(500)
    down = await konnect_server.notify(ref)
    assert down.status_code == 503
    assert (await my_subscription(api, alice))["plan"] == "free"
    assert (await konnect_server.notify(ref)).json()["result"] == "activated"


async def test_a_double_click_reuses_the_open_payment(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    alice = await register(api)
    first = await konnect_checkout(api, alice, "basic")
    again = await konnect_checkout(api, alice, "basic", expect=200)
    assert again == first and len(konnect_server.inits) == 1


async def test_a_checkout_for_the_running_plan_is_refused_another_plan_replaces_it(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    alice = await register(api)
    await subscribe_with_konnect(api, konnect_server, alice, "basic")
    refused = await konnect_checkout(api, alice, "basic", expect=409)
    assert "already" in refused["error"]["message"]
    await subscribe_with_konnect(api, konnect_server, alice, "premium")
    assert (await my_subscription(api, alice))["plan"] == "premium"


async def test_the_status_endpoint_shows_only_your_own_payments(
    api: httpx.AsyncClient, konnect_server: FakeKonnect
):
    alice, mallory = await register(api), await register(api)
    ref = (await konnect_checkout(api, alice, "basic"))["payment_ref"]
    konnect_server.pay(ref)
    r = await api.get(f"/billing/konnect/payments/{ref}", headers=auth(mallory))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    assert (await my_subscription(api, mallory))["plan"] == "free"
    assert (await my_subscription(api, alice))["plan"] == "free"


async def test_a_konnect_period_ends_then_the_user_is_free_again(
    node_factory: NodeFactory, billing_settings: dict[str, Any], konnect_server: FakeKonnect
):
    clock = ManualClock()
    settings = {**billing_settings, "konnect_period_seconds": 1}
    async with node_factory(clock=clock, **settings) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as api:
            alice = await register(api)
            await subscribe_with_konnect(api, konnect_server, alice, "basic")
            r = await api.post("/billing/cancel", headers=auth(alice))
            assert (r.json()["plan"], r.json()["cancel_at_period_end"]) == ("basic", True)
            clock.advance(1200)
            sub = await my_subscription(api, alice)
            assert (sub["plan"], sub["quota"]["monthly_limit"]) == ("free", 20)


async def test_bad_input_is_refused_clearly(api: httpx.AsyncClient):
    alice = await register(api)
    cases: list[tuple[httpx.Response, int, str]] = [
        (
            await api.post("/billing/konnect/checkout", json={"plan": "gold"}, headers=auth(alice)),
            400,
            "plan",
        ),
        (
            await api.post("/billing/konnect/checkout", json={"plan": "free"}, headers=auth(alice)),
            400,
            "plan",
        ),
        (
            await api.post("/billing/stripe/checkout", json={"plan": 3}, headers=auth(alice)),
            400,
            "plan",
        ),
        (
            await api.post(
                "/billing/konnect/checkout", json={"plan": "basic", "x": 1}, headers=auth(alice)
            ),
            400,
            "x",
        ),
        (await api.get("/billing/konnect/webhook"), 400, "payment_ref"),
        (
            await api.get("/billing/konnect/webhook", params={"payment_ref": "../x"}),
            400,
            "payment_ref",
        ),
        (await api.get("/billing/konnect/payments/a%20b", headers=auth(alice)), 400, "payment_ref"),
        (
            await api.get("/billing/payments", params={"limit": 0}, headers=auth(alice)),
            400,
            "limit",
        ),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"].get("field") == field, response.text
    for path in ("/billing/subscription", "/billing/payments"):
        assert (await api.get(path)).status_code == 401
    for path in ("/billing/cancel", "/billing/stripe/portal", "/billing/konnect/checkout"):
        assert (await api.post(path, json={"plan": "basic"})).status_code == 401
