"""QuotaService on SQLite and PostgreSQL: the API the AI feature calls.

The clock is injected so period and day changes need no waiting; storage is real.
"""

from __future__ import annotations

import datetime as dt

import pytest
import trio

from bridge.billing.plans import plans_from_settings
from bridge.billing.quota import QuotaService
from realtime_server.base.settings import Settings
from storage.base import Store, User, new_id
from storage.billing import BillingStore, BillingWrite, SubscriptionRecord, billing_store

DAY = 24 * 3600 * 1000


def ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(autouse=True)
def _deadline(_real_io_deadline: None) -> None:
    """Real database I/O: the shared watchdog fails a hung test."""


@pytest.fixture
def billing(store: Store) -> BillingStore:
    return billing_store(store)


@pytest.fixture
def clock() -> Clock:
    return Clock(ms(2026, 3, 15, 12))


def quota_service(billing: BillingStore, clock: Clock, **settings: int) -> QuotaService:
    return QuotaService(plans_from_settings(Settings(**settings)), billing, clock=clock)


async def a_user(store: Store) -> str:
    user_id = new_id("u_")
    name = user_id[-12:]
    await store.create_user(User(user_id, f"{name}@example.test", name, name, "x", 0))
    return user_id


async def give_plan(billing: BillingStore, user_id: str, plan: str, start: int, end: int) -> None:
    record = SubscriptionRecord(user_id, plan, "active", "konnect", new_id("ref"), start, end)
    await billing.apply(BillingWrite(user_id=user_id, change=lambda _current: record))


async def test_a_free_user_may_send_the_free_plans_monthly_messages_and_no_more(
    store: Store, billing: BillingStore, clock: Clock
):
    quota = quota_service(billing, clock)
    user = await a_user(store)
    for left in range(19, -1, -1):
        decision = await quota.try_consume(user)
        assert decision and decision.summary.remaining == left
    refused = await quota.try_consume(user)
    assert not refused and refused.exhausted == "monthly"
    assert refused.summary.resets_at == ms(2026, 4, 1)
    summary = await quota.summary(user)
    assert (summary.plan, summary.monthly_used, summary.remaining) == ("free", 20, 0)


async def test_a_new_month_resets_the_counter(store: Store, billing: BillingStore, clock: Clock):
    quota = quota_service(billing, clock)
    user = await a_user(store)
    assert await quota.try_consume(user, 20)
    assert not await quota.try_consume(user)
    clock.now = ms(2026, 4, 1)
    assert (await quota.summary(user)).remaining == 20
    assert await quota.try_consume(user)


async def test_the_daily_cap_refuses_and_resets_at_utc_midnight(
    store: Store, billing: BillingStore, clock: Clock
):
    quota = quota_service(billing, clock, plan_free_ai_daily=3)
    user = await a_user(store)
    assert await quota.try_consume(user, 3)
    refused = await quota.try_consume(user)
    assert not refused and refused.exhausted == "daily"
    assert refused.summary.day_resets_at == ms(2026, 3, 16)
    clock.now = ms(2026, 3, 16)
    decision = await quota.try_consume(user)
    assert decision and (decision.summary.monthly_used, decision.summary.daily_used) == (4, 1)


async def test_a_paid_plan_brings_its_own_cap_and_a_fresh_counter(
    store: Store, billing: BillingStore, clock: Clock
):
    quota = quota_service(billing, clock)
    user = await a_user(store)
    assert await quota.try_consume(user, 20)
    await give_plan(billing, user, "basic", clock.now, clock.now + 30 * DAY)
    summary = await quota.summary(user)
    assert (summary.plan, summary.monthly_limit, summary.remaining) == ("basic", 100, 100)
    assert await quota.try_consume(user, 100)
    assert not await quota.try_consume(user)
    assert await quota.allows_model(user, "gpt-4o")
    # The period ends: back on free, whose month counter still says 20.
    clock.now += 30 * DAY
    summary = await quota.summary(user)
    assert (summary.plan, summary.remaining) == ("free", 20)
    assert not await quota.allows_model(user, "gpt-4o")
    assert await quota.allows_model(user, "gpt-4o-mini")


async def test_refund_gives_a_message_back(store: Store, billing: BillingStore, clock: Clock):
    quota = quota_service(billing, clock)
    user = await a_user(store)
    assert await quota.try_consume(user, 20)
    summary = await quota.refund(user)
    assert (summary.monthly_used, summary.remaining) == (19, 1)
    assert await quota.try_consume(user)
    assert (await quota.refund(user, 50)).monthly_used == 0


async def test_a_paid_interlude_keeps_the_free_months_count(
    store: Store, billing: BillingStore, clock: Clock
):
    """Issue 12: free month used up, a paid period, cancelled within the month."""
    quota = quota_service(billing, clock)
    user = await a_user(store)
    assert await quota.try_consume(user, 20)
    await give_plan(billing, user, "basic", clock.now, clock.now + 30 * DAY)
    assert await quota.try_consume(user)
    clock.now += 2 * DAY
    await give_plan(billing, user, "basic", clock.now - 2 * DAY, clock.now - 1)  # it ended
    summary = await quota.summary(user)
    assert (summary.plan, summary.monthly_used, summary.remaining) == ("free", 20, 0)
    assert not await quota.try_consume(user)


async def test_a_refund_goes_back_to_the_period_the_message_was_counted_in(
    store: Store, billing: BillingStore, clock: Clock
):
    quota = quota_service(billing, clock)
    user = await a_user(store)
    assert await quota.try_consume(user, 20)
    await give_plan(billing, user, "basic", clock.now, clock.now + DAY)
    paid = await quota.try_consume(user)
    assert paid and paid.summary.monthly_used == 1
    clock.now += DAY  # the paid period ends while the answer is still failing
    summary = await quota.refund(user, consumed=paid)
    # The free month keeps its 20; the paid period got its message back.
    assert (summary.plan, summary.monthly_used) == ("free", 20)
    usage = await billing.usage(user, period_key=paid.period_key or "")
    assert usage is not None and usage.period_used == 0


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
async def test_a_nonsensical_count_is_refused(store: Store, billing: BillingStore, clock, n):
    quota = quota_service(billing, clock)
    with pytest.raises(ValueError):
        await quota.try_consume("u_any", n)


async def test_many_concurrent_consumers_never_exceed_the_caps(
    store: Store, billing: BillingStore, clock: Clock
):
    quota = quota_service(billing, clock, plan_free_ai_monthly=25, plan_free_ai_daily=15)
    user, other = await a_user(store), await a_user(store)
    results: dict[str, list[bool]] = {user: [], other: []}

    async def ask(who: str) -> None:
        results[who].append(bool(await quota.try_consume(who)))

    async with trio.open_nursery() as nursery:
        for _ in range(40):
            nursery.start_soon(ask, user)
            nursery.start_soon(ask, other)
    for who in (user, other):
        assert results[who].count(True) == 15
        summary = await quota.summary(who)
        assert (summary.monthly_used, summary.daily_used, summary.remaining) == (15, 15, 0)
