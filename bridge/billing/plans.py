"""Plans, and what a subscription record entitles a user to at a given time. Pure.

A plan is settings (``PLAN_<NAME>_*``): price in TND millimes, AI-message caps
per period and per UTC day, the AI models it may use, and its Stripe price id.

Which plan applies *now* is decided here and nowhere else
(``entitlement(record, plans, now)``), so quota checks, the status endpoint
and the socket's welcome always agree:

- no record, or a record whose status is not active/trialing, or whose plan
  is unknown (settings changed): the free plan;
- an active record before its ``period_end``: its plan;
- a Stripe subscription that renews (not ``cancel_at_period_end``) keeps its
  plan for ``grace`` past ``period_end``: Stripe pays the renewal invoice about
  an hour after the period ends, and ``invoice.paid`` then moves the period on;
- anything else (cancelled and past its end, a Konnect period that ran out):
  the free plan. Nothing needs to run at period end for this to happen.

Counters are keyed by the window they count (``Entitlement.period_key``,
``day_key``): a paid period is keyed by its start, the free plan by the
calendar month (UTC). A new period is a new key, which is how counters reset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from realtime_server.base.settings import SettingsError

if TYPE_CHECKING:
    from realtime_server.base.settings import Settings
    from storage.billing import SubscriptionRecord

PLAN_NAMES = ("free", "basic", "premium")
FREE = "free"
CURRENCY = "TND"  # Konnect prices; Stripe prices carry their own currency
ACTIVE_STATUSES = frozenset({"active", "trialing"})
ALL_MODELS = "*"
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    price_millimes: int
    ai_monthly: int
    ai_daily: int | None  # None: no daily cap
    models: tuple[str, ...]  # ("*",) means every model
    stripe_price: str = ""

    @property
    def is_free(self) -> bool:
        return self.name == FREE

    def allows_model(self, model: str) -> bool:
        return ALL_MODELS in self.models or model in self.models


class PlanBook:
    """The configured plans, by name and by Stripe price id."""

    def __init__(self, plans: list[Plan]) -> None:
        self._plans = {p.name: p for p in plans}
        self._by_price = {p.stripe_price: p for p in plans if p.stripe_price}
        if FREE not in self._plans:
            raise SettingsError("a free plan is required")

    def __iter__(self) -> Iterator[Plan]:
        return iter(self._plans.values())

    @property
    def free(self) -> Plan:
        return self._plans[FREE]

    def get(self, name: str) -> Plan | None:
        return self._plans.get(name)

    def by_stripe_price(self, price_id: str) -> Plan | None:
        return self._by_price.get(price_id)


def plans_from_settings(s: Settings) -> PlanBook:
    """Build the plans; a nonsensical value raises ``SettingsError`` naming the setting."""
    plans = []
    for name in PLAN_NAMES:
        prefix = f"plan_{name}_"
        price = int(getattr(s, prefix + "price_millimes"))
        monthly = int(getattr(s, prefix + "ai_monthly"))
        daily = int(getattr(s, prefix + "ai_daily"))
        models = tuple(
            m.strip() for m in str(getattr(s, prefix + "models")).split(",") if m.strip()
        )
        stripe_price = str(getattr(s, prefix + "stripe_price", "")).strip()
        for field, value in (
            ("price_millimes", price),
            ("ai_monthly", monthly),
            ("ai_daily", daily),
        ):
            if value < 0:
                raise SettingsError(f"PLAN_{name.upper()}_{field.upper()} must not be negative")
        if not models:
            raise SettingsError(f"PLAN_{name.upper()}_MODELS names no model (use * for all)")
        if name != FREE and price == 0:
            raise SettingsError(f"PLAN_{name.upper()}_PRICE_MILLIMES must be positive")
        plans.append(Plan(name, price, monthly, daily or None, models, stripe_price))
    prices = [p.stripe_price for p in plans if p.stripe_price]
    if len(prices) != len(set(prices)):
        raise SettingsError("two plans share one Stripe price id")
    return PlanBook(plans)


# ----- windows ---------------------------------------------------------------------


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def month_window(now: int) -> tuple[int, int]:
    """The calendar month (UTC) holding ``now``: [start, end) in ms."""
    t = _utc(now)
    start = dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC)
    end = dt.datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=dt.UTC)
    return _ms(start), _ms(end)


def day_window(now: int) -> tuple[int, int]:
    """The UTC day holding ``now``: [start, end) in ms."""
    start = now - now % DAY_MS
    return start, start + DAY_MS


# ----- entitlement -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entitlement:
    """The plan in force at one instant, and the counter windows it implies."""

    plan: Plan
    status: str  # "free", or the record's status
    provider: str | None
    period_start: int
    period_end: int  # when the monthly counter resets (or the plan ends)
    day_start: int
    day_end: int
    cancel_at_period_end: bool = False

    @property
    def period_key(self) -> str:
        return f"{'m' if self.status == FREE else 'p'}{self.period_start}"

    @property
    def day_key(self) -> str:
        return f"d{self.day_start}"


def entitlement(
    record: SubscriptionRecord | None, plans: PlanBook, now: int, *, grace_ms: int = 0
) -> Entitlement:
    day_start, day_end = day_window(now)
    if record is not None and record.status in ACTIVE_STATUSES:
        plan = plans.get(record.plan)
        end = record.period_end
        if record.provider == "stripe" and not record.cancel_at_period_end:
            end += grace_ms
        if plan is not None and not plan.is_free and now < end:
            return Entitlement(
                plan=plan,
                status=record.status,
                provider=record.provider,
                period_start=record.period_start,
                period_end=record.period_end,
                day_start=day_start,
                day_end=day_end,
                cancel_at_period_end=record.cancel_at_period_end,
            )
    start, end = month_window(now)
    return Entitlement(plans.free, FREE, None, start, end, day_start, day_end)
