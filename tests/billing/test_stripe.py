"""Stripe subscriptions end to end: a node's REST API, the real stripe library, a local Stripe.

Webhooks are signed with Stripe's scheme (HMAC-SHA256 of "{t}.{body}") and
verified by the node on the raw body; nothing is granted without them.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import trio

from protocol.client import ServerError, open_client
from protocol.frames_ai import AiDone
from realtime_server.base.clock import ManualClock
from realtime_server.node import Node
from tests.ai.helpers import ask, new_conversation, read_answer
from tests.billing.fake_stripe import FakeStripe, sign_event
from tests.billing.helpers import (
    deliver,
    konnect_checkout,
    my_subscription,
    stripe_checkout,
    subscribe_with_stripe,
)
from tests.conftest import NodeFactory
from tests.e2e.helpers import auth, register


def quota(node: Node) -> Any:
    return node.gateway.services.quota


async def payments(api: httpx.AsyncClient, account: Any) -> list[dict[str, Any]]:
    r = await api.get("/billing/payments", headers=auth(account))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["payments"]
    return found


async def test_a_user_upgrades_through_stripe_and_gets_the_new_quota(
    api: httpx.AsyncClient, stripe_server: FakeStripe, billing_node: Node
):
    alice = await register(api)
    checkout = await stripe_checkout(api, alice, "basic")
    assert checkout["url"].startswith("https://checkout.stripe.test/")

    created = stripe_server.posts("/v1/checkout/sessions")[0]
    assert created.headers["Idempotency-Key"] == f"checkout-{checkout['order_id']}"
    assert created.form["mode"] == "subscription"
    assert created.form["line_items[0][price]"] == "price_basic"
    assert created.form["client_reference_id"] == alice.id
    assert created.form["metadata[user_id]"] == alice.id
    assert created.form["subscription_data[metadata][user_id]"] == alice.id
    assert "{CHECKOUT_SESSION_ID}" in created.form["success_url"]

    # Coming back from the checkout page is not a payment.
    r = await api.get(
        "/billing/return", params={"result": "success", "session_id": checkout["session_id"]}
    )
    assert r.status_code == 200
    assert (await my_subscription(api, alice))["plan"] == "free"

    for event in stripe_server.pay_checkout(checkout["session_id"]):
        r = await deliver(api, event)
        assert (r.status_code, r.json()["result"]) == (200, "applied")

    sub = await my_subscription(api, alice)
    assert (sub["plan"], sub["status"], sub["provider"]) == ("basic", "active", "stripe")
    assert sub["quota"] == {
        **sub["quota"],
        "monthly_limit": 100,
        "monthly_used": 0,
        "remaining": 100,
    }
    assert await quota(billing_node).try_consume(alice.id, 100)
    refused = await quota(billing_node).try_consume(alice.id)
    assert not refused and refused.exhausted == "monthly"
    [invoice] = await payments(api, alice)
    assert (invoice["provider"], invoice["status"], invoice["amount"], invoice["currency"]) == (
        "stripe",
        "paid",
        900,
        "EUR",
    )
    # Every POST our node made to Stripe carried an idempotency key.
    assert all(r.headers.get("Idempotency-Key") for r in stripe_server.posts())


async def test_a_forged_webhook_grants_nothing(api: httpx.AsyncClient, stripe_server: FakeStripe):
    alice = await register(api)
    checkout = await stripe_checkout(api, alice, "premium")
    paid, _invoice = stripe_server.pay_checkout(checkout["session_id"])

    forged_secret = await deliver(api, paid, secret="whsec_not_the_endpoint_secret")
    body, header = sign_event(paid)
    tampered = await api.post(
        "/billing/stripe/webhook",
        content=body.replace(b'"complete"', b'"completE"'),
        headers={"Stripe-Signature": header},
    )
    unsigned = await api.post("/billing/stripe/webhook", content=body)
    garbage = await api.post(
        "/billing/stripe/webhook", content=body, headers={"Stripe-Signature": "nonsense"}
    )
    for r in (forged_secret, tampered, unsigned, garbage):
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid"
    assert (await my_subscription(api, alice))["plan"] == "free"


async def test_a_replayed_webhook_outside_the_tolerance_is_refused(
    api: httpx.AsyncClient, stripe_server: FakeStripe
):
    alice = await register(api)
    checkout = await stripe_checkout(api, alice, "basic")
    paid, _invoice = stripe_server.pay_checkout(checkout["session_id"])
    stale = await deliver(api, paid, t=int(time.time()) - 600)
    assert stale.status_code == 400
    assert "tolerance" in stale.json()["error"]["message"]
    assert (await my_subscription(api, alice))["plan"] == "free"


async def test_the_same_event_delivered_twice_is_applied_once(
    api: httpx.AsyncClient, stripe_server: FakeStripe
):
    alice = await register(api)
    sub_id = await subscribe_with_stripe(api, stripe_server, alice, "basic")
    renewal = stripe_server.renew(sub_id)
    first, second = await deliver(api, renewal), await deliver(api, renewal)
    assert (first.json()["result"], second.json()["result"]) == ("applied", "duplicate")
    # Delivered concurrently as well: still one payment per invoice.
    again = stripe_server.renew(sub_id)
    results: list[str] = []

    async def post() -> None:
        results.append((await deliver(api, again)).json()["result"])

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(post)
    assert results.count("applied") == 1 and results.count("duplicate") == 3
    assert len(await payments(api, alice)) == 3


async def test_out_of_order_events_are_harmless(api: httpx.AsyncClient, stripe_server: FakeStripe):
    alice = await register(api)
    checkout = await stripe_checkout(api, alice, "basic")
    completed, invoice_paid = stripe_server.pay_checkout(checkout["session_id"])
    # invoice.paid before checkout.session.completed: the subscription's own
    # metadata names the user, so it applies; the late completion changes nothing.
    assert (await deliver(api, invoice_paid)).json()["result"] == "applied"
    assert (await my_subscription(api, alice))["plan"] == "basic"
    assert (await deliver(api, completed)).json()["result"] == "applied"
    sub_id = stripe_server.sessions[checkout["session_id"]]["subscription"]
    # An "updated" snapshot taken while active arrives after the deletion:
    # the node re-reads the subscription from Stripe, which says canceled.
    stale_update = stripe_server.snapshot_event(sub_id)
    assert (await deliver(api, stripe_server.delete(sub_id))).json()["result"] == "applied"
    assert (await deliver(api, stale_update)).json()["result"] == "applied"
    sub = await my_subscription(api, alice)
    assert (sub["plan"], sub["status"]) == ("free", "free")


async def test_a_renewal_extends_the_period_and_resets_the_monthly_counter(
    api: httpx.AsyncClient, stripe_server: FakeStripe, billing_node: Node
):
    alice = await register(api)
    sub_id = await subscribe_with_stripe(api, stripe_server, alice, "basic")
    before = await my_subscription(api, alice)
    assert await quota(billing_node).try_consume(alice.id, 30)
    assert (await deliver(api, stripe_server.renew(sub_id))).status_code == 200
    after = await my_subscription(api, alice)
    assert after["period_start"] == before["period_end"]
    assert after["period_end"] > before["period_end"]
    assert (after["quota"]["monthly_used"], after["quota"]["remaining"]) == (0, 100)


async def test_a_failed_renewal_payment_grants_nothing(
    api: httpx.AsyncClient, stripe_server: FakeStripe
):
    alice = await register(api)
    sub_id = await subscribe_with_stripe(api, stripe_server, alice, "premium")
    r = await deliver(api, stripe_server.fail_renewal(sub_id))
    assert (r.status_code, r.json()["result"]) == (200, "applied")
    assert (await my_subscription(api, alice))["plan"] == "free"
    assert [p["status"] for p in await payments(api, alice)] == ["failed", "paid"]
    # The card is fixed and Stripe's retry of that invoice succeeds: the plan is back.
    assert (await deliver(api, stripe_server.retry_payment(sub_id))).json()["result"] == "applied"
    assert (await my_subscription(api, alice))["plan"] == "premium"
    assert [p["status"] for p in await payments(api, alice)] == ["paid", "failed", "paid"]


async def test_webhooks_for_unknown_users_or_prices_grant_nothing(
    api: httpx.AsyncClient, stripe_server: FakeStripe
):
    ghost = stripe_server.session_for("u_nobody", "price_basic")
    results = [(await deliver(api, e)).json()["result"] for e in stripe_server.pay_checkout(ghost)]
    assert results == ["unknown_user", "unknown_user"]

    alice = await register(api)
    stripe_server.prices["price_gold"] = 5000
    odd = stripe_server.session_for(alice.id, "price_gold")
    results = [(await deliver(api, e)).json()["result"] for e in stripe_server.pay_checkout(odd)]
    assert results == ["unknown_price", "unknown_price"]
    assert (await my_subscription(api, alice))["plan"] == "free"

    ignored = stripe_server.event("charge.refunded", {"id": "ch_1", "object": "charge"})
    assert (await deliver(api, ignored)).json()["result"] == "ignored"


async def test_a_checkout_for_the_plan_already_owned_is_refused(
    api: httpx.AsyncClient, stripe_server: FakeStripe
):
    alice = await register(api)
    await subscribe_with_stripe(api, stripe_server, alice, "basic")
    same = await stripe_checkout(api, alice, "basic", expect=409)
    other = await stripe_checkout(api, alice, "premium", expect=409)
    through_konnect = await konnect_checkout(api, alice, "premium", expect=409)
    assert same["error"]["code"] == "conflict" and "already" in same["error"]["message"]
    assert "portal" in other["error"]["message"]
    assert "portal" in through_konnect["error"]["message"]
    assert len(stripe_server.posts("/v1/checkout/sessions")) == 1


async def test_a_double_click_reuses_the_open_checkout_and_another_plan_expires_it(
    api: httpx.AsyncClient, stripe_server: FakeStripe
):
    alice = await register(api)
    first = await stripe_checkout(api, alice, "basic")
    again = await stripe_checkout(api, alice, "basic", expect=200)
    assert again == first
    premium = await stripe_checkout(api, alice, "premium")
    assert premium["session_id"] != first["session_id"]
    assert stripe_server.sessions[first["session_id"]]["status"] == "expired"
    assert stripe_server.sessions[premium["session_id"]]["status"] == "open"


async def test_a_paid_but_unconfirmed_checkout_blocks_a_second_one(
    api: httpx.AsyncClient, stripe_server: FakeStripe
):
    alice = await register(api)
    first = await stripe_checkout(api, alice, "basic")
    stripe_server.pay_checkout(first["session_id"])  # the webhook has not arrived yet
    refused = await stripe_checkout(api, alice, "premium", expect=409)
    assert "was paid" in refused["error"]["message"]
    assert len(stripe_server.subscriptions) == 1


async def test_stripe_timeouts_and_5xx_answer_503_and_charge_nothing(
    api: httpx.AsyncClient, stripe_server: FakeStripe
):
    alice = await register(api)
    stripe_server.hang_next(3)
    slow = await stripe_checkout(api, alice, "basic", expect=503)
    assert "did not answer in time" in slow["error"]["message"]
    stripe_server.fail_next(500)
    broken = await stripe_checkout(api, alice, "basic", expect=503)
    assert broken["error"]["code"] == "unavailable"
    assert stripe_server.sessions == {}
    assert (await my_subscription(api, alice))["plan"] == "free"
    # Stripe is back: a new checkout works.
    assert (await stripe_checkout(api, alice, "basic"))["url"]


async def test_the_librarys_retry_reuses_the_idempotency_key(
    node_factory: NodeFactory, billing_settings: dict[str, Any], stripe_server: FakeStripe
):
    async with node_factory(**{**billing_settings, "stripe_max_retries": 1}) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as api:
            alice = await register(api)
            stripe_server.fail_next(500)
            await stripe_checkout(api, alice, "basic")
    attempts = stripe_server.posts("/v1/checkout/sessions")
    assert len(attempts) == 2
    assert attempts[0].headers["Idempotency-Key"] == attempts[1].headers["Idempotency-Key"]
    assert len(stripe_server.sessions) == 1


async def test_a_webhook_while_stripe_is_down_answers_503_and_applies_when_redelivered(
    api: httpx.AsyncClient, stripe_server: FakeStripe
):
    alice = await register(api)
    checkout = await stripe_checkout(api, alice, "basic")
    completed, _invoice = stripe_server.pay_checkout(checkout["session_id"])
    stripe_server.fail_next(503)
    down = await deliver(api, completed)
    assert down.status_code == 503
    assert (await my_subscription(api, alice))["plan"] == "free"
    assert (await deliver(api, completed)).json()["result"] == "applied"
    assert (await my_subscription(api, alice))["plan"] == "basic"


async def test_cancel_keeps_access_until_period_end_then_falls_back_to_free(
    node_factory: NodeFactory, billing_settings: dict[str, Any], stripe_server: FakeStripe
):
    clock = ManualClock()
    async with (
        node_factory(clock=clock, **billing_settings) as node,
        httpx.AsyncClient(base_url=node.http_url, timeout=10) as api,
    ):
        await cancel_then_period_end(api, stripe_server, clock)


async def cancel_then_period_end(
    api: httpx.AsyncClient, stripe_server: FakeStripe, clock: ManualClock
) -> None:
    alice = await register(api)
    sub_id = await subscribe_with_stripe(api, stripe_server, alice, "premium")
    r = await api.post("/billing/cancel", headers=auth(alice))
    assert r.status_code == 200, r.text
    assert (r.json()["plan"], r.json()["cancel_at_period_end"]) == ("premium", True)
    update = stripe_server.posts(f"/v1/subscriptions/{sub_id}")[0]
    assert update.form == {"cancel_at_period_end": "true"}
    assert update.headers["Idempotency-Key"] == f"cancel-{sub_id}"
    assert stripe_server.subscriptions[sub_id]["cancel_at_period_end"] is True
    # Cancelling again changes nothing and asks Stripe nothing.
    assert (await api.post("/billing/cancel", headers=auth(alice))).status_code == 200
    assert len(stripe_server.posts(f"/v1/subscriptions/{sub_id}")) == 1

    # The period ends 3 s from now on the node's clock (Stripe tells us by an
    # update event; its times are whole seconds).
    stripe_server.end_period_now(sub_id, in_seconds=3, now=clock.now_ms() / 1000)
    await deliver(api, stripe_server.snapshot_event(sub_id))
    assert (await my_subscription(api, alice))["plan"] == "premium"
    clock.advance(3200)
    sub = await my_subscription(api, alice)
    assert (sub["plan"], sub["quota"]["monthly_limit"]) == ("free", 20)
    # Then Stripe deletes the subscription: still free, nothing to cancel.
    await deliver(api, stripe_server.delete(sub_id))
    assert (await my_subscription(api, alice))["plan"] == "free"
    nothing = await api.post("/billing/cancel", headers=auth(alice))
    assert nothing.status_code == 409


async def test_a_plan_change_in_the_portal_updates_the_plan(
    api: httpx.AsyncClient, stripe_server: FakeStripe, billing_node: Node
):
    alice = await register(api)
    sub_id = await subscribe_with_stripe(api, stripe_server, alice, "basic")
    r = await api.post("/billing/stripe/portal", headers=auth(alice))
    assert r.status_code == 200, r.text
    assert r.json()["url"].startswith("https://billing.stripe.test/")
    portal = stripe_server.posts("/v1/billing_portal/sessions")[0]
    assert portal.form["customer"] == stripe_server.subscriptions[sub_id]["customer"]
    assert portal.headers["Idempotency-Key"]

    assert await quota(billing_node).try_consume(alice.id, 60)
    await deliver(api, stripe_server.change_price(sub_id, "price_premium"))
    sub = await my_subscription(api, alice)
    # Same period, so the counter carries over into the bigger cap.
    assert (sub["plan"], sub["quota"]["monthly_used"], sub["quota"]["remaining"]) == (
        "premium",
        60,
        940,
    )


async def test_the_portal_needs_a_stripe_customer(api: httpx.AsyncClient):
    bob = await register(api)
    r = await api.post("/billing/stripe/portal", headers=auth(bob))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")


async def test_without_stripe_settings_stripe_is_refused_clearly(node_factory: NodeFactory):
    async with node_factory() as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as api:
            alice = await register(api)
            checkout = await stripe_checkout(api, alice, "basic", expect=503)
            assert "STRIPE_SECRET_KEY" in checkout["error"]["message"]
            hook = await api.post("/billing/stripe/webhook", content=b"{}")
            assert hook.status_code == 503
            assert "STRIPE_WEBHOOK_SECRET" in hook.json()["error"]["message"]
            plans = (await api.get("/billing/plans")).json()["plans"]
            assert not any(p["stripe"] or p["konnect"] for p in plans)


async def test_a_paid_interlude_does_not_give_back_the_free_months_messages(
    node_factory: NodeFactory, billing_settings: dict[str, Any], stripe_server: FakeStripe
):
    """Issue 12: free month used up, subscribe, one paid AI message, cancel the
    same month: back on free, the month's 20 are still used."""
    async with (
        node_factory(**billing_settings, ai_offline_delay=0.0005) as node,
        httpx.AsyncClient(base_url=node.http_url, timeout=10) as api,
    ):
        alice = await register(api)
        room = await new_conversation(api, alice)
        async with open_client(node.ws_url, alice.access_token) as client:

            async def ai_message() -> None:
                await ask(client, room, "hello")
                assert isinstance((await read_answer(client)).end, AiDone)

            for _ in range(20):
                await ai_message()
            with pytest.raises(ServerError) as refused:
                await ask(client, room, "one more")
            assert refused.value.code == "ai_quota_exceeded"

            sub_id = await subscribe_with_stripe(api, stripe_server, alice, "basic")
            await ai_message()
            paid = (await my_subscription(api, alice))["quota"]
            assert (paid["monthly_limit"], paid["monthly_used"]) == (100, 1)

            # Cancelled at once (Stripe deletes the subscription): free again.
            r = await deliver(api, stripe_server.delete(sub_id))
            assert r.status_code == 200, r.text
            sub = await my_subscription(api, alice)
            assert sub["plan"] == "free"
            assert (sub["quota"]["monthly_used"], sub["quota"]["remaining"]) == (20, 0)
            with pytest.raises(ServerError) as refused:
                await ask(client, room, "free again?")
            assert refused.value.code == "ai_quota_exceeded"
