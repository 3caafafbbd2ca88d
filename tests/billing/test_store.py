"""BillingStore on SQLite and PostgreSQL: atomic writes, deduplication, counters."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

import pytest
import trio

from protocol.harness.server import pg_execute
from storage.base import Store, User, new_id
from storage.billing import (
    NO_CAP,
    BillingStore,
    BillingWrite,
    Order,
    Payment,
    SubscriptionRecord,
    WebhookEvent,
    billing_store,
)
from storage.sql import migrate
from storage.sql.factory import open_store

NOW = 1_770_000_000_000
FREE_MARCH = {"period_key": "m_march", "day_key": "d15"}


@pytest.fixture(autouse=True)
def _deadline(_real_io_deadline: None) -> None:
    """Real database I/O: the shared watchdog fails a hung test."""


@pytest.fixture
def billing(store: Store) -> BillingStore:
    return billing_store(store)


async def a_user(store: Store) -> str:
    user_id = new_id("u_")
    name = user_id[-12:]
    await store.create_user(User(user_id, f"{name}@example.test", name, name, "x", NOW))
    return user_id


def record(user_id: str, **changes: Any) -> SubscriptionRecord:
    values: dict[str, Any] = {
        "user_id": user_id,
        "plan": "basic",
        "status": "active",
        "provider": "stripe",
        "provider_ref": "sub_1",
        "period_start": NOW,
        "period_end": NOW + 1000,
        "updated_at": NOW,
    }
    values.update(changes)
    return SubscriptionRecord(**values)


def paid(user_id: str, ref: str = "in_1") -> Payment:
    return Payment(new_id("pay_"), user_id, "stripe", ref, "basic", 900, "EUR", "paid", NOW)


async def test_an_event_is_applied_once_with_everything_it_writes(store: Store, billing):
    user = await a_user(store)
    event = WebhookEvent("stripe", "evt_1", "invoice.paid", NOW)
    write = BillingWrite(
        user_id=user, change=lambda _current: record(user), payment=paid(user), event=event
    )
    assert await billing.apply(write) is True
    assert await billing.event_seen("stripe", "evt_1")
    again = BillingWrite(
        user_id=user,
        change=lambda _current: record(user, plan="premium"),
        payment=paid(user, "in_2"),
        event=event,
    )
    assert await billing.apply(again) is False
    stored = await billing.get_subscription(user)
    assert stored is not None and stored.plan == "basic"
    assert [p.provider_ref for p in await billing.list_payments(user, limit=10, offset=0)] == [
        "in_1"
    ]


async def test_the_change_sees_the_current_record_and_may_leave_it(store: Store, billing):
    user = await a_user(store)
    await billing.apply(BillingWrite(user_id=user, change=lambda _c: record(user)))
    seen: list[SubscriptionRecord | None] = []

    def keep(current: SubscriptionRecord | None) -> None:
        seen.append(current)

    assert await billing.apply(BillingWrite(user_id=user, change=keep)) is True
    assert seen == [record(user)]
    assert await billing.find_subscription("stripe", "sub_1") == record(user)
    assert await billing.find_subscription("stripe", "sub_other") is None


async def test_concurrent_changes_each_decide_from_the_one_before(store: Store, billing):
    """The record is read locked: no two writers decide from the same stale record."""
    user = await a_user(store)
    await billing.apply(BillingWrite(user_id=user, change=lambda _c: record(user, period_end=0)))

    def extend(current: SubscriptionRecord | None) -> SubscriptionRecord:
        assert current is not None
        return record(user, period_end=current.period_end + 1)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(30):
                nursery.start_soon(billing.apply, BillingWrite(user_id=user, change=extend))
    stored = await billing.get_subscription(user)
    assert stored is not None and stored.period_end == 30


async def test_cancel_at_period_end_round_trips_as_a_bool(store: Store, billing):
    user = await a_user(store)
    cancelling = record(user, cancel_at_period_end=True)
    await billing.apply(BillingWrite(user_id=user, change=lambda _c: cancelling))
    stored = await billing.get_subscription(user)
    assert stored is not None and stored.cancel_at_period_end is True


async def test_an_order_completes_once_and_a_rejected_one_never(store: Store, billing):
    user = await a_user(store)
    order = Order("ord_1", user, "konnect", "basic", "open", NOW, 30_000, "TND", "ref1", "u")
    await billing.create_order(order)
    assert await billing.find_order("konnect", "ref1") == order
    done = BillingWrite(
        user_id=user, change=lambda _c: record(user), complete_order="ord_1", at=NOW + 5
    )
    assert await billing.apply(done) is True
    assert await billing.apply(done) is False
    completed = await billing.get_order("ord_1")
    assert completed is not None and (completed.status, completed.completed_at) == (
        "completed",
        NOW + 5,
    )

    await billing.create_order(Order("ord_2", user, "konnect", "basic", "open", NOW))
    assert await billing.set_order("ord_2", status="rejected", only_from=("open",))
    assert not await billing.set_order("ord_2", status="expired", only_from=("open",))
    assert await billing.apply(BillingWrite(complete_order="ord_2", at=NOW)) is False


async def test_open_orders_are_the_recent_open_ones_newest_first(store: Store, billing):
    user = await a_user(store)
    for i, status in enumerate(["open", "open", "expired", "open"]):
        await billing.create_order(Order(f"o{i}", user, "stripe", "basic", status, NOW + i))
    found = await billing.open_orders(user, "stripe", since=NOW + 1)
    assert [o.id for o in found] == ["o3", "o1"]
    assert await billing.open_orders(user, "konnect", since=0) == []


async def test_consume_counts_within_both_caps_and_a_refusal_changes_nothing(store: Store, billing):
    user = await a_user(store)
    keys = {"period_key": "p1", "day_key": "d1"}
    first = await billing.consume(user, n=2, period_cap=5, day_cap=3, **keys)
    assert first is not None and (first.period_used, first.day_used) == (2, 2)
    assert await billing.consume(user, n=2, period_cap=5, day_cap=3, **keys) is None
    usage = await billing.usage(user, period_key="p1")
    assert usage is not None and (usage.period_used, usage.day_used) == (2, 2)
    # A new day: the day counter restarts, the period one goes on.
    after = await billing.consume(user, n=2, period_cap=5, day_cap=3, period_key="p1", day_key="d2")
    assert after is not None and (after.period_used, after.day_used) == (4, 2)
    # A new period restarts the period counter too.
    renewed = await billing.consume(
        user, n=5, period_cap=5, day_cap=10, period_key="p2", day_key="d2"
    )
    assert renewed is not None and (renewed.period_used, renewed.day_used) == (5, 7)


async def test_each_period_keeps_its_own_count_across_an_interlude(store: Store, billing):
    """Issue 12: free month, a paid period, the free month again: its count is still there."""
    user = await a_user(store)
    assert await billing.consume(user, n=20, period_cap=20, day_cap=NO_CAP, **FREE_MARCH)
    assert await billing.consume(user, n=1, period_cap=20, day_cap=NO_CAP, **FREE_MARCH) is None
    paid = await billing.consume(
        user, n=1, period_cap=100, day_cap=NO_CAP, period_key="p_paid", day_key="d15"
    )
    assert paid is not None and (paid.period_key, paid.period_used, paid.day_used) == (
        "p_paid",
        1,
        21,
    )
    back = await billing.usage(user, period_key="m_march")
    assert back is not None and (back.period_used, back.day_used) == (20, 21)
    assert await billing.consume(user, n=1, period_cap=20, day_cap=NO_CAP, **FREE_MARCH) is None
    fresh = await billing.usage(user, period_key="m_april")
    assert fresh is not None and fresh.period_used == 0


async def test_a_period_refusal_rolls_back_the_day_counter_too(store: Store, billing):
    user = await a_user(store)
    assert await billing.consume(user, n=5, period_cap=5, day_cap=10, **FREE_MARCH)
    assert await billing.consume(user, n=1, period_cap=5, day_cap=10, **FREE_MARCH) is None
    usage = await billing.usage(user, period_key="m_march")
    assert usage is not None and (usage.period_used, usage.day_used) == (5, 5)


async def test_more_than_the_cap_at_once_is_refused_even_on_a_fresh_counter(store: Store, billing):
    user = await a_user(store)
    assert (
        await billing.consume(user, n=3, period_cap=2, day_cap=10, period_key="p", day_key="d")
        is None
    )
    assert await billing.usage(user, period_key="p") is None


async def test_refund_gives_back_only_on_the_current_keys_and_never_below_zero(
    store: Store, billing
):
    user = await a_user(store)
    await billing.consume(user, n=3, period_cap=10, day_cap=10, period_key="p1", day_key="d1")
    await billing.refund(user, period_key="p1", day_key="d1", n=1)
    usage = await billing.usage(user, period_key="p1")
    assert usage is not None and (usage.period_used, usage.day_used) == (2, 2)
    await billing.refund(user, period_key="p1", day_key="d0", n=5)
    usage = await billing.usage(user, period_key="p1")
    assert usage is not None and (usage.period_used, usage.day_used) == (0, 2)


async def test_concurrent_consumers_never_pass_the_cap(store: Store, billing):
    user = await a_user(store)
    granted: list[bool] = []

    async def one() -> None:
        got = await billing.consume(
            user, n=1, period_cap=20, day_cap=1000, period_key="p", day_key="d"
        )
        granted.append(got is not None)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(60):
                nursery.start_soon(one)
    assert granted.count(True) == 20
    usage = await billing.usage(user, period_key="p")
    assert usage is not None and usage.period_used == 20


async def test_counts_stored_before_migration_0009_are_kept(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install that counted under 0002's one-row-per-user table keeps its counts."""
    every = migrate.migration_files
    monkeypatch.setattr(
        migrate, "migration_files", lambda d: [f for f in every(d) if f[0] < "0009"]
    )
    async with open_store(empty_database_url) as old:
        await old.migrate()
        user = await a_user(old)
    await raw_execute(
        empty_database_url,
        "INSERT INTO billing_usage (user_id, period_key, period_used, day_key, day_used)"
        f" VALUES ('{user}', 'm_march', 17, 'd15', 4)",
    )
    monkeypatch.setattr(migrate, "migration_files", every)
    async with open_store(empty_database_url) as new:
        report = await new.migrate()
        assert [n for n in report.applied if n.startswith("0009")] == ["0009_usage_per_period.sql"]
        billing = billing_store(new)
        usage = await billing.usage(user, period_key="m_march")
        assert usage is not None and (usage.period_used, usage.day_key, usage.day_used) == (
            17,
            "d15",
            4,
        )
        assert await billing.consume(user, n=3, period_cap=20, day_cap=NO_CAP, **FREE_MARCH)
        assert await billing.consume(user, n=1, period_cap=20, day_cap=NO_CAP, **FREE_MARCH) is None


async def raw_execute(database_url: str, sql: str) -> None:
    """SQL on the database itself, as an older version of the server would have run it."""
    if database_url.startswith("sqlite:///"):

        def run() -> None:
            with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as c:
                c.execute(sql)
                c.commit()

        await trio.to_thread.run_sync(run)
    else:
        await trio.to_thread.run_sync(pg_execute, database_url, sql)
