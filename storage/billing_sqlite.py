"""``BillingStore`` on SQLite, through the main store's connections.

Every write runs on the store's single writer connection inside
``BEGIN IMMEDIATE``, which also serialises it against every other writer of
the database: the read-decide-write of ``apply`` and the conditional upsert
of ``consume`` cannot interleave with anything.
"""

from __future__ import annotations

import sqlite3
from typing import Any

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
from .sqlite import SqliteStore, _transaction

# Two conditional upserts in one write transaction: the day counter (one row
# per user; a past day's count counts as zero), then the period's own row.
# Either refused rolls both back. SET expressions read the old row.
# (The SELECT's WHERE also makes SQLite parse ON CONFLICT as the upsert clause.)
_CONSUME_DAY = """
INSERT INTO billing_usage_days (user_id, day_key, used)
SELECT :user, :dkey, :n WHERE :n <= :dcap
ON CONFLICT (user_id) DO UPDATE SET
    used = CASE WHEN day_key = :dkey THEN used + :n ELSE :n END,
    day_key = :dkey
WHERE (CASE WHEN day_key = :dkey THEN used ELSE 0 END) + :n <= :dcap
RETURNING day_key, used
"""

_CONSUME_PERIOD = """
INSERT INTO billing_usage_periods (user_id, period_key, used)
SELECT :user, :pkey, :n WHERE :n <= :pcap
ON CONFLICT (user_id, period_key) DO UPDATE SET used = used + :n
WHERE used + :n <= :pcap
RETURNING period_key, used
"""

_REFUND_DAY = """
UPDATE billing_usage_days SET used = MAX(used - :n, 0) WHERE user_id = :user AND day_key = :dkey
"""

_REFUND_PERIOD = """
UPDATE billing_usage_periods SET used = MAX(used - :n, 0)
WHERE user_id = :user AND period_key = :pkey
"""


class _Abort(Exception):
    """Raised inside a transaction to roll it back and report 'nothing changed'."""


def _subscription(row: Any) -> SubscriptionRecord | None:
    if row is None:
        return None
    values = list(row)
    values[7] = bool(values[7])
    return SubscriptionRecord(*values)


def _order(row: Any) -> Order | None:
    return None if row is None else Order(*row)


class SqliteBillingStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    # subscription record

    async def get_subscription(self, user_id: str) -> SubscriptionRecord | None:
        row = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_SUB_COLUMNS} FROM billing_subscriptions WHERE user_id = ?", (user_id,)
            ).fetchone()
        )
        return _subscription(row)

    async def find_subscription(self, provider: str, ref: str) -> SubscriptionRecord | None:
        row = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_SUB_COLUMNS} FROM billing_subscriptions"
                " WHERE provider = ? AND provider_ref = ?",
                (provider, ref),
            ).fetchone()
        )
        return _subscription(row)

    async def apply(self, write: BillingWrite) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                if write.event is not None:
                    e = write.event
                    cur = c.execute(
                        "INSERT INTO billing_events (provider, event_id, type, received_at)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (e.provider, e.event_id, e.type, e.received_at),
                    )
                    if cur.rowcount == 0:
                        raise _Abort
                if write.complete_order is not None:
                    cur = c.execute(
                        "UPDATE billing_orders SET status = 'completed', completed_at = ?"
                        " WHERE id = ? AND status NOT IN ('completed', 'rejected')",
                        (write.at, write.complete_order),
                    )
                    if cur.rowcount == 0:
                        raise _Abort
                if write.change is not None and write.user_id is not None:
                    current = _subscription(
                        c.execute(
                            f"SELECT {_SUB_COLUMNS} FROM billing_subscriptions WHERE user_id = ?",
                            (write.user_id,),
                        ).fetchone()
                    )
                    new = write.change(current)
                    if new is not None:
                        _put_subscription(c, new)
                if write.payment is not None:
                    _insert_payment(c, write.payment)
            return True

        try:
            return await self._store._write(run)
        except _Abort:
            return False

    async def event_seen(self, provider: str, event_id: str) -> bool:
        row = await self._store._read(
            lambda c: c.execute(
                "SELECT 1 FROM billing_events WHERE provider = ? AND event_id = ?",
                (provider, event_id),
            ).fetchone()
        )
        return row is not None

    # orders

    async def create_order(self, order: Order) -> None:
        await self._store._write(
            lambda c: c.execute(
                f"INSERT INTO billing_orders ({_ORDER_COLUMNS})"
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
        )

    async def get_order(self, order_id: str) -> Order | None:
        row = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_ORDER_COLUMNS} FROM billing_orders WHERE id = ?", (order_id,)
            ).fetchone()
        )
        return _order(row)

    async def find_order(self, provider: str, ref: str) -> Order | None:
        row = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_ORDER_COLUMNS} FROM billing_orders"
                " WHERE provider = ? AND provider_ref = ?",
                (provider, ref),
            ).fetchone()
        )
        return _order(row)

    async def open_orders(self, user_id: str, provider: str, since: int) -> list[Order]:
        rows = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_ORDER_COLUMNS} FROM billing_orders"
                " WHERE user_id = ? AND provider = ? AND status = 'open' AND created_at >= ?"
                " ORDER BY created_at DESC",
                (user_id, provider, since),
            ).fetchall()
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
            "UPDATE billing_orders SET status = ?,"
            " provider_ref = COALESCE(?, provider_ref), pay_url = COALESCE(?, pay_url)"
            " WHERE id = ?"
        )
        params: list[Any] = [status, provider_ref, pay_url, order_id]
        if only_from:
            sql += f" AND status IN ({', '.join('?' * len(only_from))})"
            params += only_from
        cur = await self._store._write(lambda c: c.execute(sql, params))
        return bool(cur.rowcount)

    # payments

    async def list_payments(self, user_id: str, *, limit: int, offset: int) -> list[Payment]:
        if limit <= 0:
            return []
        rows = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_PAYMENT_COLUMNS} FROM billing_payments WHERE user_id = ?"
                " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (user_id, limit, max(offset, 0)),
            ).fetchall()
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
        params = {
            "user": user_id,
            "pkey": period_key,
            "dkey": day_key,
            "n": n,
            "pcap": period_cap,
            "dcap": day_cap,
        }

        def run(c: sqlite3.Connection) -> Usage:
            with _transaction(c):
                day = c.execute(_CONSUME_DAY, params).fetchone()
                period = c.execute(_CONSUME_PERIOD, params).fetchone() if day else None
                if day is None or period is None:
                    raise _Abort
            return Usage(period[0], period[1], day[0], day[1])

        try:
            return await self._store._write(run)
        except _Abort:
            return None

    async def refund(self, user_id: str, *, period_key: str, day_key: str, n: int) -> None:
        params = {"user": user_id, "pkey": period_key, "dkey": day_key, "n": n}

        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute(_REFUND_DAY, params)
                c.execute(_REFUND_PERIOD, params)

        await self._store._write(run)

    async def usage(self, user_id: str, *, period_key: str) -> Usage | None:
        def run(c: sqlite3.Connection) -> tuple[Any, Any]:
            with _transaction(c, "DEFERRED"):
                period = c.execute(
                    "SELECT used FROM billing_usage_periods WHERE user_id = ? AND period_key = ?",
                    (user_id, period_key),
                ).fetchone()
                day = c.execute(
                    "SELECT day_key, used FROM billing_usage_days WHERE user_id = ?", (user_id,)
                ).fetchone()
            return period, day

        period, day = await self._store._read(run)
        if period is None and day is None:
            return None
        day_key, day_used = day if day is not None else ("", 0)
        return Usage(period_key, period[0] if period is not None else 0, day_key, day_used)


def _put_subscription(c: sqlite3.Connection, r: SubscriptionRecord) -> None:
    c.execute(
        f"INSERT INTO billing_subscriptions ({_SUB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET plan = excluded.plan, status = excluded.status,"
        " provider = excluded.provider, provider_ref = excluded.provider_ref,"
        " period_start = excluded.period_start, period_end = excluded.period_end,"
        " cancel_at_period_end = excluded.cancel_at_period_end,"
        " customer_ref = excluded.customer_ref, updated_at = excluded.updated_at",
        (
            r.user_id,
            r.plan,
            r.status,
            r.provider,
            r.provider_ref,
            r.period_start,
            r.period_end,
            int(r.cancel_at_period_end),
            r.customer_ref,
            r.updated_at,
        ),
    )


def _insert_payment(c: sqlite3.Connection, p: Payment) -> None:
    # A redelivered invoice (same ref and status) is already in the history.
    c.execute(
        f"INSERT INTO billing_payments ({_PAYMENT_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
