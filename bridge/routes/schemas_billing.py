"""Request and response bodies of the billing API (``/billing/...``), as msgspec Structs.

Money is in minor units: TND millimes for plan prices and Konnect payments
(1 TND = 1000 millimes); a Stripe invoice's amount is in its own currency's
minor unit. Times are ms since the Unix epoch.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from bridge.billing.plans import CURRENCY, Plan
from bridge.billing.quota import QuotaSummary
from bridge.billing.service import Checkout, Standing
from storage.billing import Order, Payment

PlanName = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=32, description="A paid plan: basic or premium."),
]
# Konnect references are hex-like ids; anything else never reaches their API.
PaymentRef = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class CheckoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    plan: PlanName


class PlanOut(msgspec.Struct):
    name: str
    price_millimes: int
    currency: str
    ai_monthly: int
    ai_daily: int | None
    models: list[str]  # ["*"] = every model
    stripe: bool  # can be bought through Stripe (a subscription)
    konnect: bool  # can be bought through Konnect (a fixed period)

    @classmethod
    def of(cls, plan: Plan, *, stripe: bool, konnect: bool) -> PlanOut:
        paid = not plan.is_free
        return cls(
            name=plan.name,
            price_millimes=plan.price_millimes,
            currency=CURRENCY,
            ai_monthly=plan.ai_monthly,
            ai_daily=plan.ai_daily,
            models=list(plan.models),
            stripe=paid and stripe and bool(plan.stripe_price),
            konnect=paid and konnect,
        )


class PlanList(msgspec.Struct):
    plans: list[PlanOut]


class QuotaOut(msgspec.Struct):
    monthly_limit: int
    monthly_used: int
    daily_limit: int | None
    daily_used: int
    remaining: int
    resets_at: int
    day_resets_at: int

    @classmethod
    def of(cls, s: QuotaSummary) -> QuotaOut:
        return cls(
            s.monthly_limit,
            s.monthly_used,
            s.daily_limit,
            s.daily_used,
            s.remaining,
            s.resets_at,
            s.day_resets_at,
        )


class SubscriptionOut(msgspec.Struct):
    plan: str
    status: str  # "free", or active | trialing (a lapsed paid record shows as free)
    provider: str | None
    period_start: int
    period_end: int
    cancel_at_period_end: bool
    models: list[str]
    quota: QuotaOut

    @classmethod
    def of(cls, standing: Standing) -> SubscriptionOut:
        ent = standing.entitlement
        return cls(
            plan=ent.plan.name,
            status=ent.status,
            provider=ent.provider,
            period_start=ent.period_start,
            period_end=ent.period_end,
            cancel_at_period_end=ent.cancel_at_period_end,
            models=list(ent.plan.models),
            quota=QuotaOut.of(standing.quota),
        )


class StripeCheckoutOut(msgspec.Struct):
    order_id: str
    plan: str
    session_id: str
    url: str  # send the user here

    @classmethod
    def of(cls, c: Checkout) -> StripeCheckoutOut:
        return cls(c.order.id, c.order.plan, c.ref, c.pay_url)


class KonnectCheckoutOut(msgspec.Struct):
    order_id: str
    plan: str
    payment_ref: str
    pay_url: str  # send the user here
    amount_millimes: int
    currency: str

    @classmethod
    def of(cls, c: Checkout) -> KonnectCheckoutOut:
        order = c.order
        return cls(
            order.id, order.plan, c.ref, c.pay_url, order.amount or 0, order.currency or CURRENCY
        )


class PortalOut(msgspec.Struct):
    url: str


class WebhookAck(msgspec.Struct):
    result: str  # applied | activated | duplicate | ignored | unknown_user | pending | ...
    received: bool = True


class OrderOut(msgspec.Struct):
    id: str
    provider: str
    plan: str
    status: str  # open | completed | expired | rejected | init_failed
    created_at: int
    amount: int | None
    currency: str | None
    completed_at: int | None

    @classmethod
    def of(cls, o: Order) -> OrderOut:
        return cls(
            o.id, o.provider, o.plan, o.status, o.created_at, o.amount, o.currency, o.completed_at
        )


class KonnectPaymentOut(msgspec.Struct):
    result: str  # activated | already_completed | pending | expired
    order: OrderOut
    subscription: SubscriptionOut


class PaymentOut(msgspec.Struct):
    id: str
    provider: str
    reference: str  # Stripe invoice id / Konnect paymentRef
    plan: str
    amount: int
    currency: str
    status: str  # paid | failed
    created_at: int
    period_start: int | None
    period_end: int | None

    @classmethod
    def of(cls, p: Payment) -> PaymentOut:
        return cls(
            p.id,
            p.provider,
            p.provider_ref,
            p.plan,
            p.amount,
            p.currency,
            p.status,
            p.created_at,
            p.period_start,
            p.period_end,
        )


class PaymentList(msgspec.Struct):
    payments: list[PaymentOut]


class PaymentListQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    offset: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0


class KonnectWebhookQuery(msgspec.Struct, frozen=True):
    payment_ref: PaymentRef


class ReturnQuery(msgspec.Struct, frozen=True):
    result: Annotated[str, msgspec.Meta(max_length=32)] = ""


class ReturnOut(msgspec.Struct):
    message: str
