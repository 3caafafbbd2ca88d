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
  inside that transaction (the row is read ``FOR UPDATE`` on PostgreSQL;
  SQLite's write transaction holds the database's write lock), so two
  writers never decide from the same stale read.
- ``consume`` is one transaction of two conditional upserts: it adds ``n`` to
  the user's day counter (restarting it when the UTC day changed) and to the
  counter of the given period, only if both stay within their caps. A refused
  call changes nothing. Of many concurrent calls, exactly as many succeed as
  the caps allow. On PostgreSQL an ``INSERT ... ON CONFLICT DO UPDATE ...
  WHERE`` locks the conflicting row and re-checks the WHERE against its
  latest committed version, so each cap check and its increment are one
  atomic step under READ COMMITTED; the day row goes first and stays locked
  to the end, so one user's calls take turns on the period row too and always
  lock in the same order. On SQLite the write lock serialises them.
- Each period keeps its own counter (issue 12): leaving a period and coming
  back to it (free month, paid interlude, free again) finds its count as it
  was. The day counter is one per user, whatever the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from storage.sql.database import Database
from storage.sql.dialect import Dialect, register_unique
from storage.sql.statements import Execute, FetchOne, Op, Row

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


register_unique(
    sqlite={
        "billing_orders.id": "id",
        "billing_orders.provider, billing_orders.provider_ref": "provider_ref",
    },
    postgres={"billing_orders_pkey": "id", "billing_orders_ref_key": "provider_ref"},
)

# Column lists in the order of the record dataclasses, so a row maps with
# Record(*row).
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

_PUT_SUBSCRIPTION = f"""
INSERT INTO billing_subscriptions ({SUB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (user_id) DO UPDATE SET plan = excluded.plan, status = excluded.status,
    provider = excluded.provider, provider_ref = excluded.provider_ref,
    period_start = excluded.period_start, period_end = excluded.period_end,
    cancel_at_period_end = excluded.cancel_at_period_end,
    customer_ref = excluded.customer_ref, updated_at = excluded.updated_at
"""

# A redelivered invoice (same ref and status) is already in the history.
_INSERT_PAYMENT = (
    f"INSERT INTO billing_payments ({PAYMENT_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)

# The two conditional upserts of ``consume``: the day counter (one row per
# user; a past day's count counts as zero), then the period's own row. SET
# and WHERE read the old row as ``u`` and the proposed one as ``excluded``.
# A SELECT with a WHERE (rather than VALUES) refuses ``n`` above the cap even
# on a fresh counter, and makes SQLite parse ON CONFLICT as the upsert clause.
# Parameters: user, key, n, n, cap, cap.
_CONSUME_DAY = """
INSERT INTO billing_usage_days AS u (user_id, day_key, used)
SELECT ?, ?, CAST(? AS BIGINT) WHERE CAST(? AS BIGINT) <= CAST(? AS BIGINT)
ON CONFLICT (user_id) DO UPDATE SET
    used = CASE WHEN u.day_key = excluded.day_key THEN u.used + excluded.used
                ELSE excluded.used END,
    day_key = excluded.day_key
WHERE (CASE WHEN u.day_key = excluded.day_key THEN u.used ELSE 0 END) + excluded.used
      <= CAST(? AS BIGINT)
RETURNING day_key, used
"""

_CONSUME_PERIOD = """
INSERT INTO billing_usage_periods AS u (user_id, period_key, used)
SELECT ?, ?, CAST(? AS BIGINT) WHERE CAST(? AS BIGINT) <= CAST(? AS BIGINT)
ON CONFLICT (user_id, period_key) DO UPDATE SET used = u.used + excluded.used
WHERE u.used + excluded.used <= CAST(? AS BIGINT)
RETURNING period_key, used
"""


class _Refused(Exception):
    """Raised inside an operation to roll its transaction back: nothing changed.

    Both drivers roll back on any exception leaving an operation; the caller
    catches this one outside ``Database.write`` and answers False / None.
    """


def _subscription(row: Row | None) -> SubscriptionRecord | None:
    if row is None:
        return None
    values = list(row)
    values[7] = bool(values[7])  # INTEGER on SQLite, boolean on PostgreSQL
    return SubscriptionRecord(*values)


def _order(row: Row | None) -> Order | None:
    return None if row is None else Order(*row)


def _apply(d: Dialect, write: BillingWrite) -> Op[bool]:
    if write.event is not None:
        e = write.event
        recorded = yield Execute(
            "INSERT INTO billing_events (provider, event_id, type, received_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (e.provider, e.event_id, e.type, e.received_at),
        )
        if recorded == 0:
            return False  # a redelivery; nothing written yet
    if write.complete_order is not None:
        completed = yield Execute(
            "UPDATE billing_orders SET status = 'completed', completed_at = ?"
            " WHERE id = ? AND status NOT IN ('completed', 'rejected')",
            (write.at, write.complete_order),
        )
        if completed == 0:
            raise _Refused  # takes the event just recorded back with it
    if write.change is not None and write.user_id is not None:
        current = yield FetchOne(
            f"SELECT {SUB_COLUMNS} FROM billing_subscriptions WHERE user_id = ?{d.for_update()}",
            (write.user_id,),
        )
        new = write.change(_subscription(current))
        if new is not None:
            yield Execute(
                _PUT_SUBSCRIPTION,
                (
                    new.user_id,
                    new.plan,
                    new.status,
                    new.provider,
                    new.provider_ref,
                    new.period_start,
                    new.period_end,
                    bool(new.cancel_at_period_end),
                    new.customer_ref,
                    new.updated_at,
                ),
            )
    if write.payment is not None:
        p = write.payment
        yield Execute(
            _INSERT_PAYMENT,
            (
                p.id,
                p.user_id,
                p.provider,
                p.provider_ref,
                p.plan,
                p.amount,
                p.currency,
                p.status,
                p.created_at,
                p.period_start,
                p.period_end,
            ),
        )
    return True


def _consume(
    user_id: str, period_key: str, day_key: str, n: int, period_cap: int, day_cap: int
) -> Op[Usage]:
    day = yield FetchOne(_CONSUME_DAY, (user_id, day_key, n, n, day_cap, day_cap))
    if day is None:
        raise _Refused
    period = yield FetchOne(_CONSUME_PERIOD, (user_id, period_key, n, n, period_cap, period_cap))
    if period is None:
        raise _Refused  # rolls the day's increment back
    return Usage(period[0], period[1], day[0], day[1])


def _refund(d: Dialect, user_id: str, period_key: str, day_key: str, n: int) -> Op[None]:
    yield Execute(
        f"UPDATE billing_usage_days SET used = {d.greatest('used - ?', '0')}"
        " WHERE user_id = ? AND day_key = ?",
        (n, user_id, day_key),
    )
    yield Execute(
        f"UPDATE billing_usage_periods SET used = {d.greatest('used - ?', '0')}"
        " WHERE user_id = ? AND period_key = ?",
        (n, user_id, period_key),
    )


class BillingStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # subscription record

    async def get_subscription(self, user_id: str) -> SubscriptionRecord | None:
        row = await self._db.fetchone(
            f"SELECT {SUB_COLUMNS} FROM billing_subscriptions WHERE user_id = ?", (user_id,)
        )
        return _subscription(row)

    async def find_subscription(self, provider: str, ref: str) -> SubscriptionRecord | None:
        row = await self._db.fetchone(
            f"SELECT {SUB_COLUMNS} FROM billing_subscriptions"
            " WHERE provider = ? AND provider_ref = ?",
            (provider, ref),
        )
        return _subscription(row)

    async def apply(self, write: BillingWrite) -> bool:
        """One transaction; False (nothing written) for a known event or a finished order."""
        try:
            return await self._db.write(_apply(self._db.dialect, write))
        except _Refused:
            return False

    async def event_seen(self, provider: str, event_id: str) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM billing_events WHERE provider = ? AND event_id = ?",
            (provider, event_id),
        )
        return row is not None

    # orders

    async def create_order(self, order: Order) -> None:
        await self._db.execute(
            f"INSERT INTO billing_orders ({ORDER_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                order.id,
                order.user_id,
                order.provider,
                order.plan,
                order.status,
                order.created_at,
                order.amount,
                order.currency,
                order.provider_ref,
                order.pay_url,
                order.completed_at,
            ),
        )

    async def get_order(self, order_id: str) -> Order | None:
        row = await self._db.fetchone(
            f"SELECT {ORDER_COLUMNS} FROM billing_orders WHERE id = ?", (order_id,)
        )
        return _order(row)

    async def find_order(self, provider: str, ref: str) -> Order | None:
        row = await self._db.fetchone(
            f"SELECT {ORDER_COLUMNS} FROM billing_orders WHERE provider = ? AND provider_ref = ?",
            (provider, ref),
        )
        return _order(row)

    async def open_orders(self, user_id: str, provider: str, since: int) -> list[Order]:
        """The user's ``open`` orders with this provider created at or after ``since``."""
        rows = await self._db.fetch(
            f"SELECT {ORDER_COLUMNS} FROM billing_orders"
            " WHERE user_id = ? AND provider = ? AND status = 'open' AND created_at >= ?"
            " ORDER BY created_at DESC",
            (user_id, provider, since),
        )
        return [Order(*r) for r in rows]

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
        sql = (
            "UPDATE billing_orders SET status = ?,"
            " provider_ref = COALESCE(?, provider_ref), pay_url = COALESCE(?, pay_url)"
            " WHERE id = ?"
        )
        params: list[object] = [status, provider_ref, pay_url, order_id]
        if only_from:
            d = self._db.dialect
            sql += f" AND {d.in_list('status')}"
            params.append(d.array(only_from))
        return await self._db.execute(sql, params) > 0

    # payments

    async def list_payments(self, user_id: str, *, limit: int, offset: int) -> list[Payment]:
        """Newest first."""
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        rows = await self._db.fetch(
            f"SELECT {PAYMENT_COLUMNS} FROM billing_payments WHERE user_id = ?"
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (user_id, limit, max(offset, 0)),
        )
        return [Payment(*r) for r in rows]

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
        try:
            return await self._db.write(
                _consume(user_id, period_key, day_key, n, period_cap, day_cap)
            )
        except _Refused:
            return None

    async def refund(self, user_id: str, *, period_key: str, day_key: str, n: int) -> None:
        """Take ``n`` back from counters still on these keys, never below zero."""
        await self._db.write(_refund(self._db.dialect, user_id, period_key, day_key, n))

    async def usage(self, user_id: str, *, period_key: str) -> Usage | None:
        """The count of ``period_key`` (0 if none) and the day counter; None if neither exists."""
        # One statement: both counters from one snapshot, in one round trip.
        row = await self._db.fetchone(
            "SELECT (SELECT used FROM billing_usage_periods"
            "         WHERE user_id = ? AND period_key = ?),"
            " d.day_key, d.used"
            " FROM (SELECT 1) AS one"
            " LEFT JOIN billing_usage_days AS d ON d.user_id = ?",
            (user_id, period_key, user_id),
        )
        if row is None or (row[0] is None and row[1] is None):
            return None
        period_used, day_key, day_used = row
        return Usage(period_key, period_used or 0, day_key or "", day_used or 0)


def billing_store(store: Store) -> BillingStore:
    return BillingStore(store.db)
