"""Billing storage: the subscription record, checkout orders, payments, webhook
events and AI-message counters.

Rules the SQL itself enforces, so concurrent requests and duplicate webhooks
cannot break them:
- ``apply(write)`` is one transaction: the webhook event is recorded (or the
  order completed) *and* the subscription and payment are written, or nothing
  is. A write for an event already recorded, or for an order already
  completed or rejected, changes nothing and returns False: that is the
  deduplication of webhooks and the idempotency of payment verification.
- The subscription change is a function of the current record, evaluated
  inside that transaction (the row is locked on PostgreSQL; SQLite holds its
  write lock), so two writers never decide from the same stale read.
- ``consume`` is one transaction of two conditional upserts: it adds ``n`` to
  the user's day counter (restarting it when the UTC day changed) and to the
  counter of the given period, only if both stay within their caps. A refused
  call changes nothing. Of many concurrent calls, exactly as many succeed as
  the caps allow: the day row, written first, serialises one user's calls.
- Each period keeps its own counter (issue 12): leaving a period and coming
  back to it (free month, paid interlude, free again) finds its count as it
  was. The day counter is one per user, whatever the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .base import Store

# Large enough to mean "no cap", small enough for a signed 64-bit column.
NO_CAP = 2**62


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """The one record per user that quota checks read; gateways only write it."""

    user_id: str
    plan: str
    status: str  # active | trialing | past_due | canceled | incomplete | unpaid | ...
    provider: str  # "stripe" | "konnect"
    provider_ref: str  # Stripe subscription id, or the Konnect paymentRef that bought it
    period_start: int
    period_end: int
    cancel_at_period_end: bool = False
    customer_ref: str | None = None  # Stripe customer id (for the portal)
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class Order:
    """A checkout we started: a Stripe Checkout Session or a Konnect payment."""

    id: str
    user_id: str
    provider: str
    plan: str
    status: str  # open | completed | expired | rejected | init_failed
    created_at: int
    amount: int | None = None  # minor units; None for Stripe (the price lives there)
    currency: str | None = None
    provider_ref: str | None = None  # Checkout Session id / Konnect paymentRef
    pay_url: str | None = None
    completed_at: int | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    user_id: str
    provider: str
    provider_ref: str  # Stripe invoice id / Konnect paymentRef
    plan: str
    amount: int
    currency: str
    status: str  # paid | failed
    created_at: int
    period_start: int | None = None
    period_end: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    provider: str
    event_id: str
    type: str
    received_at: int


@dataclass(frozen=True, slots=True)
class Usage:
    period_key: str
    period_used: int
    day_key: str
    day_used: int


SubscriptionChange = Callable[[SubscriptionRecord | None], SubscriptionRecord | None]


@dataclass(frozen=True, slots=True)
class BillingWrite:
    """Everything one verified payment fact changes, applied atomically.

    ``change`` gets the user's current record (or None) and returns the record
    to store, or None to leave it as it is.
    """

    user_id: str | None = None
    change: SubscriptionChange | None = None
    payment: Payment | None = None
    event: WebhookEvent | None = None
    complete_order: str | None = None  # order id; must not be completed or rejected yet
    at: int = 0


class BillingStore(Protocol):
    # subscription record
    async def get_subscription(self, user_id: str) -> SubscriptionRecord | None: ...
    async def find_subscription(self, provider: str, ref: str) -> SubscriptionRecord | None: ...

    async def apply(self, write: BillingWrite) -> bool:
        """One transaction; False (nothing written) for a known event or a finished order."""

    async def event_seen(self, provider: str, event_id: str) -> bool: ...

    # orders
    async def create_order(self, order: Order) -> None: ...
    async def get_order(self, order_id: str) -> Order | None: ...
    async def find_order(self, provider: str, ref: str) -> Order | None: ...

    async def open_orders(self, user_id: str, provider: str, since: int) -> list[Order]:
        """The user's ``open`` orders with this provider created at or after ``since``."""

    async def set_order(
        self,
        order_id: str,
        *,
        status: str,
        provider_ref: str | None = None,
        pay_url: str | None = None,
        only_from: tuple[str, ...] = (),
    ) -> bool:
        """Set status (and ref/url when given); with ``only_from``, only from those statuses."""

    # payments
    async def list_payments(self, user_id: str, *, limit: int, offset: int) -> list[Payment]:
        """Newest first."""

    # AI-message counters
    async def consume(
        self,
        user_id: str,
        *,
        period_key: str,
        day_key: str,
        n: int,
        period_cap: int,
        day_cap: int,
    ) -> Usage | None:
        """Add ``n`` to both counters if both stay within their caps; None if refused."""

    async def refund(self, user_id: str, *, period_key: str, day_key: str, n: int) -> None:
        """Take ``n`` back from counters still on these keys, never below zero."""

    async def usage(self, user_id: str, *, period_key: str) -> Usage | None:
        """The count of ``period_key`` (0 if none) and the day counter; None if neither exists."""


def billing_store(store: Store) -> BillingStore:
    if store.backend == "sqlite":
        from .billing_sqlite import SqliteBillingStore

        return SqliteBillingStore(store)  # type: ignore[arg-type]
    from .billing_postgres import PostgresBillingStore

    return PostgresBillingStore(store)  # type: ignore[arg-type]


# Column lists shared by the SQLite and PostgreSQL implementations (same order as
# the record dataclasses, so a row maps with Record(*row)).
SUB_COLUMNS = (
    "user_id, plan, status, provider, provider_ref, period_start, period_end,"
    " cancel_at_period_end, customer_ref, updated_at"
)
ORDER_COLUMNS = (
    "id, user_id, provider, plan, status, created_at, amount, currency, provider_ref,"
    " pay_url, completed_at"
)
PAYMENT_COLUMNS = (
    "id, user_id, provider, provider_ref, plan, amount, currency, status, created_at,"
    " period_start, period_end"
)
