"""Billing test helpers that speak the domain: subscribe, deliver a webhook, read my plan."""

from __future__ import annotations

from typing import Any

import httpx

from tests.billing.fake_konnect import FakeKonnect
from tests.billing.fake_stripe import WEBHOOK_SECRET, FakeStripe, sign_event
from tests.e2e.helpers import Account, auth


async def deliver(
    api: httpx.AsyncClient,
    event: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    t: int | None = None,
) -> httpx.Response:
    """Post ``event`` to the node's Stripe webhook, signed as Stripe signs it."""
    body, header = sign_event(event, secret, t)
    return await api.post(
        "/billing/stripe/webhook",
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


async def my_subscription(api: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    r = await api.get("/billing/subscription", headers=auth(account))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def stripe_checkout(
    api: httpx.AsyncClient, account: Account, plan: str, *, expect: int = 201
) -> dict[str, Any]:
    r = await api.post("/billing/stripe/checkout", json={"plan": plan}, headers=auth(account))
    assert r.status_code == expect, r.text
    body: dict[str, Any] = r.json()
    return body


async def subscribe_with_stripe(
    api: httpx.AsyncClient, stripe: FakeStripe, account: Account, plan: str
) -> str:
    """Checkout, pay on "Stripe", deliver Stripe's events; returns the subscription id."""
    checkout = await stripe_checkout(api, account, plan)
    for event in stripe.pay_checkout(checkout["session_id"]):
        r = await deliver(api, event)
        assert r.status_code == 200, r.text
    sub_id: str = stripe.sessions[checkout["session_id"]]["subscription"]
    return sub_id


async def konnect_checkout(
    api: httpx.AsyncClient, account: Account, plan: str, *, expect: int = 201
) -> dict[str, Any]:
    r = await api.post("/billing/konnect/checkout", json={"plan": plan}, headers=auth(account))
    assert r.status_code == expect, r.text
    body: dict[str, Any] = r.json()
    return body


async def subscribe_with_konnect(
    api: httpx.AsyncClient, konnect: FakeKonnect, account: Account, plan: str
) -> str:
    """Checkout, pay on "Konnect", let Konnect call the webhook; returns the paymentRef."""
    checkout = await konnect_checkout(api, account, plan)
    ref: str = checkout["payment_ref"]
    konnect.pay(ref)
    r = await konnect.notify(ref)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "activated"
    return ref
