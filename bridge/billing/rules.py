"""Pure billing decisions: what a gateway's facts mean for the subscription record.

No I/O here: each function takes plain data (Stripe objects as dicts, Konnect
payments as dicts, our records) and returns a decision, so every rule has a
plain test (tests/billing/test_rules.py).

Rules:
- Stripe: the subscription object, re-read from Stripe, is the truth; events
  only say *which* subscription to re-read (they may come twice or out of
  order). The record follows that subscription when it is the user's current
  one, or when it is live (a new subscription takes over); the end of an older
  subscription never ends a newer plan.
- Konnect: a payment counts only when Konnect itself says ``completed`` and its
  order, amount and currency match the order we created. It buys a fixed
  period from the moment it is verified; a second payment for the plan
  already running extends it instead (nothing paid for is lost).
- Checkout: the same paid plan twice is refused, and so is any checkout while
  a Stripe subscription runs (plan changes go through Stripe's portal, so
  nobody pays two subscriptions at once).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bridge.billing.plans import ACTIVE_STATUSES, Entitlement, Plan
from storage.billing import Order, SubscriptionRecord

STRIPE = "stripe"
KONNECT = "konnect"

Obj = Mapping[str, Any]


def _id(value: Any) -> str | None:
    """A Stripe reference: an id string, or an expanded object carrying one."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _ms(seconds: Any) -> int | None:
    return int(seconds) * 1000 if isinstance(seconds, int | float) else None


def _metadata_user(obj: Obj) -> str | None:
    metadata = obj.get("metadata") or {}
    user = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    return user if isinstance(user, str) and user else None


# ----- Stripe ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StripeSubscription:
    id: str
    status: str
    customer: str | None
    user_id: str | None  # from metadata (set through subscription_data.metadata)
    price_id: str | None
    period_start: int  # ms
    period_end: int  # ms
    cancel_at_period_end: bool


def parse_stripe_subscription(obj: Obj) -> StripeSubscription:
    """Read a subscription object; raises ValueError when it lacks what we need.

    Since API version 2025-03-31 the current period lives on each item; older
    versions had it on the subscription. Both are read.
    """
    sub_id = _id(obj)
    items = (obj.get("items") or {}).get("data") or []
    item: Obj = items[0] if items and isinstance(items[0], Mapping) else {}
    price = item.get("price") or {}
    start = _ms(item.get("current_period_start", obj.get("current_period_start")))
    end = _ms(item.get("current_period_end", obj.get("current_period_end")))
    status = obj.get("status")
    if sub_id is None or not isinstance(status, str) or start is None or end is None:
        raise ValueError("not a subscription object with an id, a status and a period")
    return StripeSubscription(
        id=sub_id,
        status=status,
        customer=_id(obj.get("customer")),
        user_id=_metadata_user(obj),
        price_id=_id(price),
        period_start=start,
        period_end=end,
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
    )


def merge_stripe(
    current: SubscriptionRecord | None,
    sub: StripeSubscription,
    plan: Plan,
    user_id: str,
    now: int,
) -> SubscriptionRecord | None:
    """The record after learning ``sub``'s state; None leaves ``current`` as it is."""
    new = SubscriptionRecord(
        user_id=user_id,
        plan=plan.name,
        status=sub.status,
        provider=STRIPE,
        provider_ref=sub.id,
        period_start=sub.period_start,
        period_end=sub.period_end,
        cancel_at_period_end=sub.cancel_at_period_end,
        customer_ref=sub.customer or (current.customer_ref if current else None),
        updated_at=now,
    )
    if current is None:
        return new
    if current.provider == STRIPE and current.provider_ref == sub.id:
        return new
    if sub.status in ACTIVE_STATUSES:
        return new
    return None


@dataclass(frozen=True, slots=True)
class InvoiceFact:
    id: str
    paid: bool
    amount: int  # minor units of ``currency``
    currency: str
    period_start: int | None
    period_end: int | None


@dataclass(frozen=True, slots=True)
class StripeEventFacts:
    """What one webhook event asks of us; ``ignored`` says why it asks nothing."""

    subscription_id: str | None = None
    user_hint: str | None = None
    session_id: str | None = None
    invoice: InvoiceFact | None = None
    ignored: str | None = None


HANDLED_EVENTS = (
    "checkout.session.completed",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)


def read_stripe_event(event_type: str, obj: Obj) -> StripeEventFacts:
    match event_type:
        case "checkout.session.completed":
            if obj.get("mode") != "subscription":
                return StripeEventFacts(ignored="not a subscription checkout")
            by_reference = obj.get("client_reference_id") or None
            by_metadata = _metadata_user(obj)
            if by_reference and by_metadata and by_reference != by_metadata:
                return StripeEventFacts(ignored="client_reference_id and metadata disagree")
            sub_id = _id(obj.get("subscription"))
            if sub_id is None:
                return StripeEventFacts(ignored="the session has no subscription")
            return StripeEventFacts(
                subscription_id=sub_id,
                user_hint=by_reference or by_metadata,
                session_id=_id(obj),
            )
        case "invoice.paid" | "invoice.payment_failed":
            details = ((obj.get("parent") or {}).get("subscription_details")) or {}
            sub_id = _id(details.get("subscription")) or _id(obj.get("subscription"))
            invoice_id = _id(obj)
            if sub_id is None or invoice_id is None:
                return StripeEventFacts(ignored="not a subscription invoice")
            paid = event_type == "invoice.paid"
            lines = (obj.get("lines") or {}).get("data") or []
            period = (lines[0].get("period") or {}) if lines else {}
            amount = obj.get("amount_paid" if paid else "amount_due")
            invoice = InvoiceFact(
                id=invoice_id,
                paid=paid,
                amount=int(amount) if isinstance(amount, int) else 0,
                currency=str(obj.get("currency") or "").upper(),
                period_start=_ms(period.get("start")),
                period_end=_ms(period.get("end")),
            )
            return StripeEventFacts(subscription_id=sub_id, invoice=invoice)
        case "customer.subscription.updated" | "customer.subscription.deleted":
            sub_id = _id(obj)
            if sub_id is None:
                return StripeEventFacts(ignored="the subscription has no id")
            return StripeEventFacts(subscription_id=sub_id, user_hint=_metadata_user(obj))
        case _:
            return StripeEventFacts(ignored=f"{event_type} is not an event we act on")


# ----- Konnect ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KonnectVerdict:
    outcome: str  # completed | pending | expired | mismatch
    reason: str = ""


def konnect_verdict(order: Order, payment: Obj, now: int) -> KonnectVerdict:
    """Whether Konnect's own view of a payment pays for ``order``."""
    order_id = payment.get("orderId")
    if order_id is not None and order_id != order.id:
        return KonnectVerdict("mismatch", f"the payment is for order {order_id!r}")
    if payment.get("token") != order.currency:
        return KonnectVerdict(
            "mismatch", f"currency {payment.get('token')!r} is not {order.currency}"
        )
    if payment.get("amount") != order.amount:
        return KonnectVerdict(
            "mismatch", f"amount {payment.get('amount')!r} is not {order.amount} millimes"
        )
    if payment.get("status") == "completed":
        return KonnectVerdict("completed")
    expires = _iso_ms(payment.get("expirationDate"))
    if expires is not None and expires <= now:
        return KonnectVerdict("expired", "the payment link expired unpaid")
    return KonnectVerdict("pending", "Konnect has not received the payment (yet)")


def _iso_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def merge_konnect(
    current: SubscriptionRecord | None,
    user_id: str,
    plan: Plan,
    payment_ref: str,
    now: int,
    period_ms: int,
) -> SubscriptionRecord:
    if (
        current is not None
        and current.provider == KONNECT
        and current.plan == plan.name
        and current.status in ACTIVE_STATUSES
        and current.period_end > now
    ):
        # Paid twice for the running plan: the second period follows the first.
        return replace(current, period_end=current.period_end + period_ms, updated_at=now)
    return SubscriptionRecord(
        user_id=user_id,
        plan=plan.name,
        status="active",
        provider=KONNECT,
        provider_ref=payment_ref,
        period_start=now,
        period_end=now + period_ms,
        cancel_at_period_end=False,
        customer_ref=current.customer_ref if current else None,
        updated_at=now,
    )


# ----- checkout and cancel ---------------------------------------------------------


def cancel_konnect(
    current: SubscriptionRecord | None, ref: str, now: int
) -> SubscriptionRecord | None:
    """Konnect never renews by itself: cancelling only records the wish (and shows it)."""
    if current is None or current.provider_ref != ref:
        return None
    return replace(current, cancel_at_period_end=True, updated_at=now)


def checkout_refusal(current: Entitlement, plan: Plan) -> str | None:
    """Why a checkout for ``plan`` must not start, or None when it may."""
    if current.provider == STRIPE:
        if current.plan.name == plan.name:
            return f"You already have the {plan.name} plan."
        return (
            "Your Stripe subscription is active; change plans in the billing portal "
            "(POST /billing/stripe/portal) so you are never charged twice."
        )
    if current.provider == KONNECT and current.plan.name == plan.name:
        return f"You already have the {plan.name} plan until the end of its period."
    return None
