"""``BillingStore`` on PostgreSQL, through the main store's pool.

``apply`` reads the subscription row ``FOR UPDATE`` inside its transaction,
so two writers for one user take turns. ``consume`` is one transaction of
two ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``: the conflicting row is
locked and the WHERE re-checked against its latest committed version, which
makes each cap check and its increment one atomic step under READ COMMITTED.
The day row goes first and stays locked to the end, so one user's consumes
take turns on the period row too, and always lock in the same order.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]

from .billing import ORDER_COLUMNS as _ORDER_COLUMNS
from .billing import PAYMENT_COLUMNS as _PAYMENT_COLUMNS
from .billing import SUB_COLUMNS as _SUB_COLUMNS
from .billing import (
    BillingWrite,
    Order,
    Payment,
    SubscriptionRecord,
    Usage,
)
from .postgres import PostgresStore

_CONSUME_DAY = """
INSERT INTO billing_usage_days AS u (user_id, day_key, used)
SELECT $1, $2::text, $3::bigint WHERE $3::bigint <= $4::bigint
ON CONFLICT (user_id) DO UPDATE SET
    used = CASE WHEN u.day_key = $2::text THEN u.used + $3::bigint ELSE $3::bigint END,
    day_key = $2::text
WHERE (CASE WHEN u.day_key = $2::text THEN u.used ELSE 0 END) + $3::bigint <= $4::bigint
RETURNING day_key, used
"""

_CONSUME_PERIOD = """
INSERT INTO billing_usage_periods AS u (user_id, period_key, used)
SELECT $1, $2::text, $3::bigint WHERE $3::bigint <= $4::bigint
ON CONFLICT (user_id, period_key) DO UPDATE SET used = u.used + $3::bigint
WHERE u.used + $3::bigint <= $4::bigint
RETURNING period_key, used
"""

_REFUND_DAY = """
UPDATE billing_usage_days SET used = GREATEST(used - $3::bigint, 0)
WHERE user_id = $1 AND day_key = $2::text
"""

_REFUND_PERIOD = """
UPDATE billing_usage_periods SET used = GREATEST(used - $3::bigint, 0)
WHERE user_id = $1 AND period_key = $2::text
"""

_PUT_SUBSCRIPTION = f"""
INSERT INTO billing_subscriptions ({_SUB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (user_id) DO UPDATE SET plan = excluded.plan, status = excluded.status,
    provider = excluded.provider, provider_ref = excluded.provider_ref,
    period_start = excluded.period_start, period_end = excluded.period_end,
    cancel_at_period_end = excluded.cancel_at_period_end,
    customer_ref = excluded.customer_ref, updated_at = excluded.updated_at
"""

_INSERT_PAYMENT = (
    f"INSERT INTO billing_payments ({_PAYMENT_COLUMNS})"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
)


class _Abort(Exception):
    """Raised inside a transaction to roll it back and report 'nothing changed'."""


def _subscription(row: Any) -> SubscriptionRecord | None:
    return None if row is None else SubscriptionRecord(*row)


def _order(row: Any) -> Order | None:
    return None if row is None else Order(*row)


def _count(status: str) -> int:
    # asyncpg answers "UPDATE 3" / "INSERT 0 1": the last number is the row count.
    return int(status.rsplit(" ", 1)[-1])


class PostgresBillingStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool = store._pool

    # subscription record

    async def get_subscription(self, user_id: str) -> SubscriptionRecord | None:
        row = await self._store._run(
            self._pool.fetchrow,
            f"SELECT {_SUB_COLUMNS} FROM billing_subscriptions WHERE user_id = $1",
            user_id,
        )
        return _subscription(row)

    async def find_subscription(self, provider: str, ref: str) -> SubscriptionRecord | None:
        row = await self._store._run(
            self._pool.fetchrow,
            f"SELECT {_SUB_COLUMNS} FROM billing_subscriptions"
            " WHERE provider = $1 AND provider_ref = $2",
            provider,
            ref,
        )
        return _subscription(row)

    async def apply(self, write: BillingWrite) -> bool:
        async def run(c: asyncpg.Connection) -> bool:
            if write.event is not None:
                e = write.event
                status = await c.execute(
                    "INSERT INTO billing_events (provider, event_id, type, received_at)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    e.provider,
                    e.event_id,
                    e.type,
                    e.received_at,
                )
                if _count(status) == 0:
                    raise _Abort
            if write.complete_order is not None:
                status = await c.execute(
                    "UPDATE billing_orders SET status = 'completed', completed_at = $1"
                    " WHERE id = $2 AND status NOT IN ('completed', 'rejected')",
                    write.at,
                    write.complete_order,
                )
                if _count(status) == 0:
                    raise _Abort
            if write.change is not None and write.user_id is not None:
                current = _subscription(
                    await c.fetchrow(
                        f"SELECT {_SUB_COLUMNS} FROM billing_subscriptions"
                        " WHERE user_id = $1 FOR UPDATE",
                        write.user_id,
                    )
                )
                new = write.change(current)
                if new is not None:
                    await c.execute(
                        _PUT_SUBSCRIPTION,
                        new.user_id,
                        new.plan,
                        new.status,
                        new.provider,
                        new.provider_ref,
                        new.period_start,
                        new.period_end,
                        new.cancel_at_period_end,
                        new.customer_ref,
                        new.updated_at,
                    )
            if write.payment is not None:
                p = write.payment
                await c.execute(
                    _INSERT_PAYMENT,
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
                )
            return True

        try:
            return await self._store._in_transaction(run)
        except _Abort:
            return False

    async def event_seen(self, provider: str, event_id: str) -> bool:
        found = await self._store._run(
            self._pool.fetchval,
            "SELECT 1 FROM billing_events WHERE provider = $1 AND event_id = $2",
            provider,
            event_id,
        )
        return found is not None

    # orders

    async def create_order(self, order: Order) -> None:
        await self._store._run(
            self._pool.execute,
            f"INSERT INTO billing_orders ({_ORDER_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        )

    async def get_order(self, order_id: str) -> Order | None:
        row = await self._store._run(
            self._pool.fetchrow,
            f"SELECT {_ORDER_COLUMNS} FROM billing_orders WHERE id = $1",
            order_id,
        )
        return _order(row)

    async def find_order(self, provider: str, ref: str) -> Order | None:
        row = await self._store._run(
            self._pool.fetchrow,
            f"SELECT {_ORDER_COLUMNS} FROM billing_orders"
            " WHERE provider = $1 AND provider_ref = $2",
            provider,
            ref,
        )
        return _order(row)

    async def open_orders(self, user_id: str, provider: str, since: int) -> list[Order]:
        rows = await self._store._run(
            self._pool.fetch,
            f"SELECT {_ORDER_COLUMNS} FROM billing_orders"
            " WHERE user_id = $1 AND provider = $2 AND status = 'open' AND created_at >= $3"
            " ORDER BY created_at DESC",
            user_id,
            provider,
            since,
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
        sql = (
            "UPDATE billing_orders SET status = $1,"
            " provider_ref = COALESCE($2, provider_ref), pay_url = COALESCE($3, pay_url)"
            " WHERE id = $4"
        )
        params: list[Any] = [status, provider_ref, pay_url, order_id]
        if only_from:
            sql += " AND status = ANY($5::text[])"
            params.append(list(only_from))
        status_line = await self._store._run(self._pool.execute, sql, *params)
        return _count(status_line) > 0

    # payments

    async def list_payments(self, user_id: str, *, limit: int, offset: int) -> list[Payment]:
        if limit <= 0:
            return []
        rows = await self._store._run(
            self._pool.fetch,
            f"SELECT {_PAYMENT_COLUMNS} FROM billing_payments WHERE user_id = $1"
            " ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
            user_id,
            limit,
            max(offset, 0),
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
        async def run(c: asyncpg.Connection) -> Usage:
            day = await c.fetchrow(_CONSUME_DAY, user_id, day_key, n, day_cap)
            if day is None:
                raise _Abort
            period = await c.fetchrow(_CONSUME_PERIOD, user_id, period_key, n, period_cap)
            if period is None:
                raise _Abort  # rolls the day's increment back
            return Usage(period[0], period[1], day[0], day[1])

        try:
            return await self._store._in_transaction(run)
        except _Abort:
            return None

    async def refund(self, user_id: str, *, period_key: str, day_key: str, n: int) -> None:
        async def run(c: asyncpg.Connection) -> None:
            await c.execute(_REFUND_DAY, user_id, day_key, n)
            await c.execute(_REFUND_PERIOD, user_id, period_key, n)

        await self._store._in_transaction(run)

    async def usage(self, user_id: str, *, period_key: str) -> Usage | None:
        row = await self._store._run(
            self._pool.fetchrow,
            "SELECT (SELECT used FROM billing_usage_periods"
            "         WHERE user_id = $1 AND period_key = $2),"
            " d.day_key, d.used"
            " FROM (SELECT 1) AS one"
            " LEFT JOIN billing_usage_days AS d ON d.user_id = $1",
            user_id,
            period_key,
        )
        if row is None or (row[0] is None and row[1] is None):
            return None
        period_used, day_key, day_used = row
        return Usage(period_key, period_used or 0, day_key or "", day_used or 0)
