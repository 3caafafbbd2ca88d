"""Pure billing decisions: plans, windows, entitlement, and what gateway facts lead to. No I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bridge.billing.plans import (
    Entitlement,
    PlanBook,
    day_window,
    entitlement,
    month_window,
    plans_from_settings,
)
from bridge.billing.quota import QuotaDecision, _summarise
from bridge.billing.rules import (
    cancel_konnect,
    checkout_refusal,
    konnect_verdict,
    merge_konnect,
    merge_stripe,
    parse_stripe_subscription,
    read_stripe_event,
)
from bridge.billing.service import check_settings
from realtime_server.base.settings import Settings, SettingsError
from storage.billing import Order, SubscriptionRecord, Usage

DAY = 24 * 3600 * 1000
MONTH = 30 * DAY


def ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


NOW = ms(2026, 3, 15, 12, 30)
PLANS = plans_from_settings(
    Settings(plan_basic_stripe_price="price_basic", plan_premium_stripe_price="price_premium")
)


def record(**changes: Any) -> SubscriptionRecord:
    values: dict[str, Any] = {
        "user_id": "u1",
        "plan": "basic",
        "status": "active",
        "provider": "stripe",
        "provider_ref": "sub_1",
        "period_start": NOW - 10 * DAY,
        "period_end": NOW + 20 * DAY,
        "cancel_at_period_end": False,
        "customer_ref": "cus_1",
        "updated_at": NOW - 10 * DAY,
    }
    values.update(changes)
    return SubscriptionRecord(**values)


# ----- plans -----------------------------------------------------------------------


def test_the_default_plans_are_the_issues():
    free, basic, premium = (PLANS.get(n) for n in ("free", "basic", "premium"))
    assert free is not None and basic is not None and premium is not None
    assert (free.price_millimes, free.ai_monthly, free.ai_daily) == (0, 20, None)
    assert free.allows_model("gpt-4o-mini") and not free.allows_model("gpt-4o")
    assert (basic.price_millimes, basic.ai_monthly) == (30_000, 100)
    assert (premium.price_millimes, premium.ai_monthly) == (60_000, 1000)
    assert basic.allows_model("gpt-4o") and premium.allows_model("anything-else")
    assert PLANS.by_stripe_price("price_premium") is premium
    assert PLANS.by_stripe_price("price_unknown") is None


def test_a_daily_cap_is_a_setting_per_plan():
    plans = plans_from_settings(Settings(plan_basic_ai_daily=10))
    basic = plans.get("basic")
    assert basic is not None and basic.ai_daily == 10
    assert plans.free.ai_daily is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"plan_free_ai_monthly": -1}, "PLAN_FREE_AI_MONTHLY"),
        ({"plan_basic_price_millimes": 0}, "PLAN_BASIC_PRICE_MILLIMES"),
        ({"plan_premium_models": " , "}, "PLAN_PREMIUM_MODELS"),
        ({"plan_basic_stripe_price": "p", "plan_premium_stripe_price": "p"}, "Stripe price"),
    ],
)
def test_nonsensical_plan_settings_are_refused_by_name(changes: dict[str, Any], named: str):
    with pytest.raises(SettingsError, match=named):
        plans_from_settings(Settings(**changes))


# ----- windows and entitlement -----------------------------------------------------


def test_windows_are_the_utc_calendar_month_and_day():
    assert month_window(NOW) == (ms(2026, 3, 1), ms(2026, 4, 1))
    assert month_window(ms(2026, 12, 31, 23, 59)) == (ms(2026, 12, 1), ms(2027, 1, 1))
    assert day_window(NOW) == (ms(2026, 3, 15), ms(2026, 3, 16))


def test_no_record_means_the_free_plan_counted_per_calendar_month():
    ent = entitlement(None, PLANS, NOW)
    assert (ent.plan.name, ent.status, ent.provider) == ("free", "free", None)
    assert (ent.period_start, ent.period_end) == month_window(NOW)
    next_month = entitlement(None, PLANS, ms(2026, 4, 2))
    assert next_month.period_key != ent.period_key


def test_an_active_record_in_its_period_grants_its_plan_keyed_by_that_period():
    ent = entitlement(record(), PLANS, NOW)
    assert (ent.plan.name, ent.provider, ent.period_end) == ("basic", "stripe", NOW + 20 * DAY)
    renewed = entitlement(
        record(period_start=NOW + 20 * DAY, period_end=NOW + 50 * DAY), PLANS, NOW
    )
    assert renewed.period_key != ent.period_key
    assert ent.period_key != entitlement(None, PLANS, NOW).period_key


@pytest.mark.parametrize("status", ["past_due", "canceled", "incomplete", "unpaid"])
def test_a_record_without_a_verified_payment_grants_nothing(status: str):
    assert entitlement(record(status=status), PLANS, NOW).plan.name == "free"


def test_a_renewing_stripe_plan_survives_the_grace_time_past_its_end_and_no_longer():
    lapsed = record(period_end=NOW - 1000)
    assert entitlement(lapsed, PLANS, NOW, grace_ms=DAY).plan.name == "basic"
    assert entitlement(lapsed, PLANS, NOW + DAY, grace_ms=DAY).plan.name == "free"


def test_a_cancelled_plan_lasts_exactly_to_its_period_end():
    cancelled = record(cancel_at_period_end=True, period_end=NOW + 1000)
    ent = entitlement(cancelled, PLANS, NOW, grace_ms=DAY)
    assert ent.plan.name == "basic" and ent.cancel_at_period_end
    assert entitlement(cancelled, PLANS, NOW + 1000, grace_ms=DAY).plan.name == "free"


def test_a_konnect_period_ends_without_grace():
    konnect = record(provider="konnect", provider_ref="ref1", period_end=NOW + 1)
    assert entitlement(konnect, PLANS, NOW, grace_ms=DAY).plan.name == "basic"
    assert entitlement(konnect, PLANS, NOW + 1, grace_ms=DAY).plan.name == "free"


def test_a_record_naming_an_unknown_plan_grants_the_free_plan():
    assert entitlement(record(plan="gold"), PLANS, NOW).plan.name == "free"


# ----- quota arithmetic ------------------------------------------------------------


def _ent(plan: str = "basic", daily: int | None = None) -> Entitlement:
    ent = entitlement(record(plan=plan), PLANS, NOW)
    if daily is not None:
        plans = plans_from_settings(Settings(**{f"plan_{plan}_ai_daily": daily}))
        ent = entitlement(record(plan=plan), plans, NOW)
    return ent


def test_remaining_is_the_tighter_of_the_period_and_day_caps():
    ent = _ent(daily=5)
    s = _summarise(ent, Usage(ent.period_key, 40, ent.day_key, 3))
    assert (s.monthly_used, s.daily_used, s.remaining) == (40, 3, 2)


def test_counters_on_an_older_period_or_day_count_as_zero():
    ent = _ent(daily=5)
    s = _summarise(ent, Usage("p0", 99, "d0", 5))
    assert (s.monthly_used, s.daily_used, s.remaining) == (0, 0, 5)


def test_a_refusal_says_which_cap_and_when_it_resets():
    ent = _ent(daily=5)
    s = _summarise(ent, Usage(ent.period_key, 40, ent.day_key, 5))
    refused = QuotaDecision(False, s, "daily")
    assert not refused
    assert "Daily" in refused.message and str(ent.day_end) in refused.message


# ----- Stripe ----------------------------------------------------------------------


def subscription_object(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "sub_1",
        "object": "subscription",
        "status": "active",
        "customer": "cus_1",
        "cancel_at_period_end": False,
        "metadata": {"user_id": "u1"},
        "items": {
            "data": [
                {
                    "price": {"id": "price_premium"},
                    "current_period_start": 1_770_000_000,
                    "current_period_end": 1_772_592_000,
                }
            ]
        },
    }
    obj.update(changes)
    return obj


def test_a_subscription_is_read_with_its_item_period_in_ms():
    sub = parse_stripe_subscription(subscription_object())
    assert (sub.id, sub.status, sub.customer, sub.user_id) == ("sub_1", "active", "cus_1", "u1")
    assert (sub.price_id, sub.period_start, sub.period_end) == (
        "price_premium",
        1_770_000_000_000,
        1_772_592_000_000,
    )


def test_a_subscription_of_an_older_api_version_is_read_too():
    legacy = subscription_object(
        items={"data": [{"price": {"id": "price_basic"}}]},
        current_period_start=10,
        current_period_end=20,
        customer={"id": "cus_9", "object": "customer"},
    )
    sub = parse_stripe_subscription(legacy)
    assert (sub.period_start, sub.period_end, sub.customer) == (10_000, 20_000, "cus_9")


def test_a_subscription_without_a_period_is_refused():
    with pytest.raises(ValueError):
        parse_stripe_subscription({"id": "sub_1", "status": "active", "items": {"data": []}})


def test_a_completed_checkout_names_the_subscription_and_the_user():
    facts = read_stripe_event(
        "checkout.session.completed",
        {
            "id": "cs_1",
            "mode": "subscription",
            "client_reference_id": "u1",
            "metadata": {"user_id": "u1"},
            "subscription": "sub_1",
        },
    )
    assert (facts.subscription_id, facts.user_hint, facts.session_id) == ("sub_1", "u1", "cs_1")
    assert facts.ignored is None


@pytest.mark.parametrize(
    ("event_type", "obj"),
    [
        ("checkout.session.completed", {"id": "cs_1", "mode": "payment", "subscription": None}),
        (
            "checkout.session.completed",
            {
                "id": "cs_1",
                "mode": "subscription",
                "client_reference_id": "u1",
                "metadata": {"user_id": "u2"},
                "subscription": "sub_1",
            },
        ),
        ("invoice.paid", {"id": "in_1", "amount_paid": 100}),
        ("charge.refunded", {"id": "ch_1"}),
    ],
)
def test_events_that_ask_nothing_of_us_are_ignored_with_a_reason(
    event_type: str, obj: dict[str, Any]
):
    facts = read_stripe_event(event_type, obj)
    assert facts.ignored and facts.subscription_id is None


def test_a_paid_invoice_carries_the_amount_currency_and_period():
    facts = read_stripe_event(
        "invoice.paid",
        {
            "id": "in_1",
            "currency": "eur",
            "amount_paid": 1800,
            "amount_due": 1800,
            "parent": {"subscription_details": {"subscription": "sub_1"}},
            "lines": {"data": [{"period": {"start": 1, "end": 2}}]},
        },
    )
    assert facts.subscription_id == "sub_1"
    assert facts.invoice is not None
    assert (facts.invoice.paid, facts.invoice.amount, facts.invoice.currency) == (True, 1800, "EUR")
    assert (facts.invoice.period_start, facts.invoice.period_end) == (1000, 2000)
    failed = read_stripe_event(
        "invoice.payment_failed", {"id": "in_2", "subscription": "sub_1", "amount_due": 900}
    )
    assert failed.invoice is not None and not failed.invoice.paid and failed.invoice.amount == 900


def test_stripe_state_replaces_the_record_of_the_same_subscription():
    premium = PLANS.get("premium")
    assert premium is not None
    sub = parse_stripe_subscription(subscription_object(status="past_due"))
    new = merge_stripe(record(), sub, premium, "u1", NOW)
    assert new is not None
    assert (new.plan, new.status, new.provider_ref, new.updated_at) == (
        "premium",
        "past_due",
        "sub_1",
        NOW,
    )


def test_the_end_of_an_older_subscription_does_not_end_the_current_plan():
    basic = PLANS.get("basic")
    assert basic is not None
    old = parse_stripe_subscription(subscription_object(id="sub_old", status="canceled"))
    assert merge_stripe(record(provider_ref="sub_new"), old, basic, "u1", NOW) is None
    konnect = record(provider="konnect", provider_ref="ref1")
    assert merge_stripe(konnect, old, basic, "u1", NOW) is None


def test_a_new_live_subscription_takes_over():
    basic = PLANS.get("basic")
    assert basic is not None
    new_sub = parse_stripe_subscription(subscription_object(id="sub_new"))
    merged = merge_stripe(
        record(provider="konnect", provider_ref="ref1"), new_sub, basic, "u1", NOW
    )
    assert merged is not None and merged.provider == "stripe" and merged.provider_ref == "sub_new"


# ----- Konnect ---------------------------------------------------------------------


def order(**changes: Any) -> Order:
    values: dict[str, Any] = {
        "id": "ord_1",
        "user_id": "u1",
        "provider": "konnect",
        "plan": "premium",
        "status": "open",
        "created_at": NOW,
        "amount": 60_000,
        "currency": "TND",
        "provider_ref": "ref1",
    }
    values.update(changes)
    return Order(**values)


def payment(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": "ref1",
        "status": "completed",
        "amount": 60_000,
        "token": "TND",
        "orderId": "ord_1",
        "expirationDate": "2026-03-15T13:00:00.000Z",
    }
    values.update(changes)
    return values


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, "completed"),
        ({"status": "pending"}, "pending"),
        ({"status": "pending", "expirationDate": "2026-03-15T12:00:00Z"}, "expired"),
        ({"amount": 30_000}, "mismatch"),
        ({"token": "EUR"}, "mismatch"),
        ({"orderId": "ord_other"}, "mismatch"),
        ({"amount": 30_000, "status": "pending"}, "mismatch"),
    ],
)
def test_a_konnect_payment_counts_only_when_completed_and_matching(
    changes: dict[str, Any], outcome: str
):
    verdict = konnect_verdict(order(), payment(**changes), NOW)
    assert verdict.outcome == outcome
    assert (verdict.reason != "") == (outcome != "completed")


def test_a_konnect_payment_buys_a_fixed_period_from_its_verification():
    premium = PLANS.get("premium")
    assert premium is not None
    new = merge_konnect(None, "u1", premium, "ref1", NOW, MONTH)
    assert (new.user_id, new.plan, new.status, new.provider) == (
        "u1",
        "premium",
        "active",
        "konnect",
    )
    assert (new.period_start, new.period_end) == (NOW, NOW + MONTH)


def test_paying_again_for_the_running_konnect_plan_extends_it():
    premium = PLANS.get("premium")
    assert premium is not None
    running = record(plan="premium", provider="konnect", provider_ref="ref1")
    extended = merge_konnect(running, "u1", premium, "ref2", NOW, MONTH)
    assert extended.period_start == running.period_start
    assert extended.period_end == running.period_end + MONTH


def test_a_konnect_payment_for_another_plan_starts_now():
    basic = PLANS.get("basic")
    assert basic is not None
    running = record(plan="premium", provider="konnect", provider_ref="ref1")
    new = merge_konnect(running, "u1", basic, "ref2", NOW, MONTH)
    assert (new.plan, new.period_start, new.provider_ref) == ("basic", NOW, "ref2")


def test_cancelling_a_konnect_plan_only_marks_it():
    running = record(provider="konnect", provider_ref="ref1")
    marked = cancel_konnect(running, "ref1", NOW)
    assert marked is not None and marked.cancel_at_period_end
    assert marked.period_end == running.period_end
    assert cancel_konnect(running, "ref_other", NOW) is None


# ----- checkout --------------------------------------------------------------------


def _plan(name: str) -> Any:
    plan = PLANS.get(name)
    assert plan is not None
    return plan


def test_checkout_refusals():
    free = entitlement(None, PLANS, NOW)
    stripe_basic = entitlement(record(), PLANS, NOW)
    konnect_basic = entitlement(record(provider="konnect", provider_ref="r"), PLANS, NOW)
    assert checkout_refusal(free, _plan("basic")) is None
    assert "already" in (checkout_refusal(stripe_basic, _plan("basic")) or "")
    assert "portal" in (checkout_refusal(stripe_basic, _plan("premium")) or "")
    assert "already" in (checkout_refusal(konnect_basic, _plan("basic")) or "")
    assert checkout_refusal(konnect_basic, _plan("premium")) is None


def test_plan_book_needs_a_free_plan():
    with pytest.raises(SettingsError):
        PlanBook([])


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"stripe_checkout_ttl": 1800}, "STRIPE_CHECKOUT_TTL"),
        ({"stripe_checkout_ttl": 90_000}, "STRIPE_CHECKOUT_TTL"),
        ({"konnect_period_seconds": 0}, "KONNECT_PERIOD_SECONDS"),
        ({"stripe_max_retries": -1}, "STRIPE_MAX_RETRIES"),
    ],
)
def test_gateway_settings_no_gateway_would_accept_are_refused_by_name(
    changes: dict[str, Any], named: str
):
    with pytest.raises(SettingsError, match=named):
        check_settings(Settings(**changes))
    check_settings(Settings())
