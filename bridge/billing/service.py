"""Subscriptions: checkouts, webhooks, cancel and status, over both gateways.

``Billing`` is what a node wires: the plans, the ``QuotaService``, this
``SubscriptionService`` and the two gateways (whose HTTP clients live as long
as ``Billing.serve`` runs in the node's nursery).

Rules:
- Access follows verified payments only: a Stripe subscription as Stripe
  itself reports it (re-read on every event), a Konnect payment as Konnect
  reports it (re-read on every webhook or status call). Landing on the return
  URL grants nothing.
- Every write of a payment fact is one ``BillingStore.apply`` transaction, so
  a webhook event is applied exactly once and a Konnect order completes once,
  however often and in whatever order they arrive.
- A gateway that times out or fails leaves our data as it was and answers 503;
  Stripe and Konnect retry webhooks, and clients retry checkouts (a retried
  Stripe POST carries the same idempotency key).
- Checkouts of one user take turns (a per-user lock on this node) and reuse
  a still-payable open checkout for the same plan, so a double click never
  yields two payable sessions; opening one for another plan expires the old.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio

from actors.supervision import hold_until_cancelled
from bridge.billing.errors import (
    AlreadySubscribed,
    NothingToCancel,
    PaymentMismatch,
    PaymentNotFound,
)
from bridge.billing.konnect import KonnectGateway
from bridge.billing.plans import CURRENCY, Entitlement, Plan, PlanBook, plans_from_settings
from bridge.billing.quota import QuotaService, QuotaSummary
from bridge.billing.rules import (
    KONNECT,
    STRIPE,
    cancel_konnect,
    checkout_refusal,
    konnect_verdict,
    merge_konnect,
    merge_stripe,
    parse_stripe_subscription,
    read_stripe_event,
)
from bridge.billing.stripe import StripeGateway
from bridge.errors import BadRequest
from realtime_server.base.settings import Settings, SettingsError
from storage.base import Store, new_id, now_ms
from storage.billing import (
    BillingStore,
    BillingWrite,
    Order,
    Payment,
    SubscriptionChange,
    WebhookEvent,
    billing_store,
)

if TYPE_CHECKING:  # types only: the bridge does not start the node's services
    from bridge.notifications.notifier import Notifier

log = logging.getLogger(__name__)


class _KeyedLocks:
    """One trio.Lock per key, alive only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[trio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, waiters = self._locks.get(key, (trio.Lock(), 0))
        self._locks[key] = (lock, waiters + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiters = self._locks[key]
            if waiters == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, waiters - 1)


@dataclass(frozen=True, slots=True)
class Standing:
    """A user's plan in force and what is left of its quota (REST shows it as
    ``SubscriptionOut``)."""

    entitlement: Entitlement
    quota: QuotaSummary


@dataclass(frozen=True, slots=True)
class Checkout:
    """An open checkout: our order, the gateway's reference, and where the user pays."""

    order: Order
    ref: str  # Stripe's session id, or Konnect's payment reference
    pay_url: str


@dataclass(frozen=True, slots=True)
class Links:
    """Where gateways send people and notifications, for one request."""

    public: str  # this server's public base URL
    back: str  # where payment pages send the user back


class SubscriptionService:
    def __init__(
        self,
        settings: Settings,
        users: Store,
        store: BillingStore,
        plans: PlanBook,
        quota: QuotaService,
        stripe: StripeGateway,
        konnect: KonnectGateway,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self._users = users
        self.store = store
        self.plans = plans
        self.quota = quota
        self.stripe = stripe
        self.konnect = konnect
        self._clock = clock  # the node's (realtime_server.base.clock): periods, renewals
        self._user_locks = _KeyedLocks()
        self._subscription_locks = _KeyedLocks()
        # Set by the node (issue 15): a payment and a plan set to end become
        # the user's notifications, after the fact is stored and only when
        # this call applied it (never twice).
        self.notifier: Notifier | None = None

    def links(self, request_base: str) -> Links:
        public = (self.settings.billing_public_url or request_base).rstrip("/")
        back = self.settings.billing_return_url or f"{public}/billing/return"
        return Links(public, back)

    # ----- status ------------------------------------------------------------------

    async def status(self, user_id: str) -> Standing:
        return Standing(*await self.quota.snapshot(user_id))

    async def payments(self, user_id: str, *, limit: int, offset: int) -> list[Payment]:
        return await self.store.list_payments(user_id, limit=limit, offset=offset)

    def _paid_plan(self, name: str) -> Plan:
        plan = self.plans.get(name)
        if plan is None:
            known = ", ".join(p.name for p in self.plans if not p.is_free)
            raise BadRequest(f"Unknown plan {name!r}; choose one of: {known}.", field="plan")
        if plan.is_free:
            raise BadRequest(
                "The free plan needs no checkout; cancel your subscription instead.", field="plan"
            )
        return plan

    async def _refuse_if_owned(self, user_id: str, plan: Plan) -> None:
        refusal = checkout_refusal(await self.quota.entitlement(user_id), plan)
        if refusal is not None:
            raise AlreadySubscribed(refusal, field="plan")

    # ----- Stripe ------------------------------------------------------------------

    async def stripe_checkout(
        self, user_id: str, plan_name: str, links: Links
    ) -> tuple[Checkout, bool]:
        """(checkout, created): an open session for the same plan is reused."""
        plan = self._paid_plan(plan_name)
        self.stripe.client  # noqa: B018 - refuses at once when Stripe is not configured
        if not plan.stripe_price:
            raise BadRequest(
                f"The {plan.name} plan is not sold through Stripe here; use Konnect.", field="plan"
            )
        async with self._user_locks.hold(user_id):
            await self._refuse_if_owned(user_id, plan)
            now = self._clock()
            ttl_ms = self.settings.stripe_checkout_ttl * 1000
            for old in await self.store.open_orders(user_id, STRIPE, now - ttl_ms):
                if old.plan == plan.name and old.provider_ref and old.pay_url:
                    return Checkout(old, old.provider_ref, old.pay_url), False
                await self._expire_stripe_order(old)
            record = await self.store.get_subscription(user_id)
            order = Order(new_id("ord_"), user_id, STRIPE, plan.name, "open", now)
            await self.store.create_order(order)
            try:
                session = await self.stripe.create_checkout(
                    order_id=order.id,
                    user_id=user_id,
                    price_id=plan.stripe_price,
                    success_url=f"{links.back}?result=success&session_id={{CHECKOUT_SESSION_ID}}",
                    cancel_url=f"{links.back}?result=cancel",
                    expires_at=now + ttl_ms,
                    customer=record.customer_ref if record else None,
                )
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self.store.set_order(order.id, status="init_failed", only_from=("open",))
                raise
            await self.store.set_order(
                order.id, status="open", provider_ref=session.id, pay_url=session.url
            )
            return Checkout(order, session.id, session.url), True

    async def _expire_stripe_order(self, order: Order) -> None:
        if order.provider_ref:
            status = await self.stripe.expire_checkout(order.provider_ref)
            if status == "complete":
                raise AlreadySubscribed(
                    f"Your checkout for the {order.plan} plan was paid; its confirmation "
                    "is on the way.",
                    field="plan",
                )
        await self.store.set_order(order.id, status="expired", only_from=("open",))

    async def stripe_portal(self, user_id: str, links: Links) -> str:
        self.stripe.client  # noqa: B018
        record = await self.store.get_subscription(user_id)
        if record is None or not record.customer_ref:
            raise PaymentNotFound("You have no Stripe customer account yet; subscribe first.")
        return await self.stripe.portal_session(
            record.customer_ref, links.back, key=new_id("portal-")
        )

    async def stripe_webhook(self, payload: bytes, signature: str | None) -> str:
        """Apply one signed Stripe event; returns what it led to."""
        event = self.stripe.verify_event(payload, signature)
        event_id, event_type = event["id"], event["type"]
        obj = (event.get("data") or {}).get("object") or {}
        facts = read_stripe_event(event_type, obj if isinstance(obj, dict) else {})
        if await self.store.event_seen(STRIPE, event_id):
            return "duplicate"
        now = self._clock()
        record_event = WebhookEvent(STRIPE, event_id, event_type, now)
        if facts.ignored or facts.subscription_id is None:
            log.info("Stripe event %s (%s) ignored: %s", event_id, event_type, facts.ignored)
            await self.store.apply(BillingWrite(event=record_event, at=now))
            return "ignored"
        # Events for one subscription take turns: each re-reads the subscription
        # and writes what it read, so the last writer has the newest state.
        async with self._subscription_locks.hold(facts.subscription_id):
            try:
                raw = await self.stripe.retrieve_subscription(facts.subscription_id)
                sub = parse_stripe_subscription(raw)
            except (PaymentNotFound, ValueError) as exc:
                # Retrying cannot help: answer 2xx so Stripe stops redelivering.
                log.warning("Stripe subscription %s unusable: %s", facts.subscription_id, exc)
                await self.store.apply(BillingWrite(event=record_event, at=now))
                return "unknown_subscription"
            outcome, user_id = await self._stripe_user(facts.user_hint, sub.user_id, sub.id)
            plan = self.plans.by_stripe_price(sub.price_id or "")
            if user_id is None or plan is None:
                outcome = outcome if user_id is None else "unknown_price"
                log.warning("Stripe event %s grants nothing: %s", event_id, outcome)
                await self.store.apply(BillingWrite(event=record_event, at=now))
                return outcome
            # What it was, to tell a new "cancelled at period end" from a repeat.
            before = None if self.notifier is None else await self.store.get_subscription(user_id)
            payment = None
            if facts.invoice is not None:
                inv = facts.invoice
                payment = Payment(
                    id=new_id("pay_"),
                    user_id=user_id,
                    provider=STRIPE,
                    provider_ref=inv.id,
                    plan=plan.name,
                    amount=inv.amount,
                    currency=inv.currency,
                    status="paid" if inv.paid else "failed",
                    created_at=now,
                    period_start=inv.period_start,
                    period_end=inv.period_end,
                )
            applied = await self.store.apply(
                BillingWrite(
                    user_id=user_id,
                    change=partial(merge_stripe, sub=sub, plan=plan, user_id=user_id, now=now),
                    payment=payment,
                    event=record_event,
                    at=now,
                )
            )
        if not applied:
            return "duplicate"
        if self.notifier is not None:
            if payment is not None:
                await self.notifier.payment(
                    user_id,
                    paid=payment.status == "paid",
                    plan=plan.name,
                    amount=payment.amount,
                    currency=payment.currency,
                )
            was_ending = (
                before is not None and before.provider_ref == sub.id and before.cancel_at_period_end
            )
            if sub.cancel_at_period_end and not was_ending:
                await self.notifier.plan_ending(user_id, plan.name, sub.period_end)
        if facts.session_id:
            order = await self.store.find_order(STRIPE, facts.session_id)
            if order is not None:
                await self.store.set_order(
                    order.id, status="completed", only_from=("open", "expired", "init_failed")
                )
        return "applied"

    async def _stripe_user(
        self, hint: str | None, from_metadata: str | None, subscription_id: str
    ) -> tuple[str, str | None]:
        """(outcome, user id or None): whose subscription this is, if we know them."""
        if hint and from_metadata and hint != from_metadata:
            return "user_mismatch", None
        user_id = hint or from_metadata
        if user_id is None:
            known = await self.store.find_subscription(STRIPE, subscription_id)
            user_id = known.user_id if known else None
        if user_id is None or await self._users.get_user(user_id) is None:
            return "unknown_user", None
        return "applied", user_id

    # ----- Konnect -----------------------------------------------------------------

    async def konnect_checkout(
        self, user_id: str, plan_name: str, links: Links
    ) -> tuple[Checkout, bool]:
        plan = self._paid_plan(plan_name)
        self.konnect.http  # noqa: B018 - refuses at once when Konnect is not configured
        async with self._user_locks.hold(user_id):
            await self._refuse_if_owned(user_id, plan)
            now = self._clock()
            payable_since = now - self.settings.konnect_lifespan_minutes * 60_000
            for old in await self.store.open_orders(user_id, KONNECT, payable_since):
                if old.plan == plan.name and old.provider_ref and old.pay_url:
                    return Checkout(old, old.provider_ref, old.pay_url), False
            order = Order(
                new_id("ord_"),
                user_id,
                KONNECT,
                plan.name,
                "open",
                now,
                amount=plan.price_millimes,
                currency=CURRENCY,
            )
            await self.store.create_order(order)
            try:
                pay_url, ref = await self.konnect.init_payment(
                    order_id=order.id,
                    amount=plan.price_millimes,
                    currency=CURRENCY,
                    description=f"{plan.name} plan",
                    webhook=f"{links.public}/billing/konnect/webhook",
                    success_url=f"{links.back}?result=success",
                    fail_url=f"{links.back}?result=fail",
                )
            except BaseException:
                # Kept, not deleted: should a late payment for it ever arrive,
                # its orderId still finds the order.
                with trio.CancelScope(shield=True):
                    await self.store.set_order(order.id, status="init_failed", only_from=("open",))
                raise
            await self.store.set_order(order.id, status="open", provider_ref=ref, pay_url=pay_url)
            return Checkout(order, ref, pay_url), True

    async def konnect_verify(
        self, payment_ref: str, *, user_id: str | None = None
    ) -> tuple[str, Order]:
        """Re-read the payment from Konnect and apply it; (result, order).

        ``user_id`` given (the status endpoint): only that user's orders exist.
        """
        order = await self.store.find_order(KONNECT, payment_ref)
        if user_id is not None and (order is None or order.user_id != user_id):
            raise PaymentNotFound("You have no Konnect payment with this reference.")
        payment = await self.konnect.get_payment(payment_ref)
        if order is None:
            order_id = payment.get("orderId")
            found = await self.store.get_order(order_id) if isinstance(order_id, str) else None
            if (
                found is None
                or found.provider != KONNECT
                or found.provider_ref not in (None, payment_ref)
            ):
                log.warning("Konnect payment %s matches no order of ours", payment_ref)
                raise PaymentNotFound("No order of ours matches this payment; nothing was granted.")
            order = found
        if order.status == "completed":
            return "already_completed", order
        if order.status == "rejected":
            raise PaymentMismatch("This payment was rejected earlier; nothing was granted.")
        now = self._clock()
        verdict = konnect_verdict(order, payment, now)
        match verdict.outcome:
            case "completed":
                return await self._complete_konnect(order, payment_ref, now), order
            case "mismatch":
                log.warning("Konnect payment %s rejected: %s", payment_ref, verdict.reason)
                rejected = await self.store.set_order(
                    order.id,
                    status="rejected",
                    provider_ref=payment_ref,
                    only_from=("open", "init_failed", "expired"),
                )
                if rejected and self.notifier is not None:
                    await self.notifier.payment(
                        order.user_id,
                        paid=False,
                        plan=order.plan,
                        amount=order.amount or 0,
                        currency=order.currency or CURRENCY,
                        reason=verdict.reason,
                    )
                raise PaymentMismatch(
                    f"The payment does not match the order ({verdict.reason}); nothing was granted."
                )
            case "expired":
                await self.store.set_order(
                    order.id, status="expired", only_from=("open", "init_failed")
                )
                return "expired", order
            case "pending":
                return "pending", order
            case _:
                raise AssertionError(f"unhandled Konnect verdict {verdict!r}")

    async def _complete_konnect(self, order: Order, payment_ref: str, now: int) -> str:
        plan = self.plans.get(order.plan)
        if plan is None or plan.is_free:
            raise PaymentMismatch(f"The order's plan {order.plan!r} no longer exists.")
        if order.provider_ref is None:
            await self.store.set_order(order.id, status=order.status, provider_ref=payment_ref)
        period_ms = self.settings.konnect_period_seconds * 1000
        user_id = order.user_id
        payment = Payment(
            id=new_id("pay_"),
            user_id=user_id,
            provider=KONNECT,
            provider_ref=payment_ref,
            plan=plan.name,
            amount=order.amount or 0,
            currency=order.currency or CURRENCY,
            status="paid",
            created_at=now,
            period_start=now,
            period_end=now + period_ms,
        )
        applied = await self.store.apply(
            BillingWrite(
                user_id=user_id,
                change=partial(
                    merge_konnect,
                    user_id=user_id,
                    plan=plan,
                    payment_ref=payment_ref,
                    now=now,
                    period_ms=period_ms,
                ),
                payment=payment,
                complete_order=order.id,
                at=now,
            )
        )
        if applied and self.notifier is not None:
            await self.notifier.payment(
                user_id,
                paid=True,
                plan=plan.name,
                amount=payment.amount,
                currency=payment.currency,
            )
        return "activated" if applied else "already_completed"

    # ----- cancel ------------------------------------------------------------------

    async def cancel(self, user_id: str) -> Standing:
        """Cancel at period end: the plan stays until then, then it is free again."""
        ent = await self.quota.entitlement(user_id)
        record = await self.store.get_subscription(user_id)
        if ent.provider is None or record is None:
            raise NothingToCancel("You are on the free plan; there is nothing to cancel.")
        if not record.cancel_at_period_end:
            now = self._clock()
            change: SubscriptionChange
            if record.provider == STRIPE:
                sub = parse_stripe_subscription(
                    await self.stripe.cancel_at_period_end(record.provider_ref)
                )
                plan = self.plans.by_stripe_price(sub.price_id or "") or ent.plan
                change = partial(merge_stripe, sub=sub, plan=plan, user_id=user_id, now=now)
            else:
                change = partial(cancel_konnect, ref=record.provider_ref, now=now)
            await self.store.apply(BillingWrite(user_id=user_id, change=change, at=now))
            standing = await self.status(user_id)
            ent = standing.entitlement
            if self.notifier is not None and ent.cancel_at_period_end:
                await self.notifier.plan_ending(user_id, ent.plan.name, ent.period_end or 0)
            return standing
        return await self.status(user_id)


def check_settings(s: Settings) -> None:
    """Refuse billing settings no gateway would accept, naming the setting."""
    if not 1800 < s.stripe_checkout_ttl <= 86_400:
        # Stripe wants expires_at 30 min to 24 h ahead *when it receives the request*.
        raise SettingsError("STRIPE_CHECKOUT_TTL must be more than 1800 and at most 86400")
    for name in ("konnect_period_seconds", "konnect_lifespan_minutes", "stripe_timeout"):
        if getattr(s, name) <= 0:
            raise SettingsError(f"{name.upper()} must be positive")
    for name in ("stripe_max_retries", "billing_renewal_grace_seconds"):
        if getattr(s, name) < 0:
            raise SettingsError(f"{name.upper()} must not be negative")


class Billing:
    """Plans, quota, subscriptions and both gateways of one node."""

    def __init__(
        self, settings: Settings, store: Store, *, clock: Callable[[], int] = now_ms
    ) -> None:
        check_settings(settings)
        self.plans = plans_from_settings(settings)
        self.store = billing_store(store)
        self.stripe = StripeGateway(settings)
        self.konnect = KonnectGateway(settings)
        self.quota = QuotaService(
            self.plans,
            self.store,
            grace_ms=settings.billing_renewal_grace_seconds * 1000,
            clock=clock,
        )
        self.subscriptions = SubscriptionService(
            settings,
            store,
            self.store,
            self.plans,
            self.quota,
            self.stripe,
            self.konnect,
            clock=clock,
        )

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Owns the gateways' HTTP clients for as long as the node runs."""
        await hold_until_cancelled(task_status=task_status, on_stop=self.aclose)

    async def aclose(self) -> None:
        await self.stripe.aclose()
        await self.konnect.aclose()
