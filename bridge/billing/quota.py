"""AI-message quotas: the API the AI feature calls before it calls a provider.

Where to find it: ``ctx.services.quota`` in a socket frame handler (the
gateway's services), ``services.billing.quota`` in a REST route.

API (all methods are trio-async and safe to call concurrently)::

    decision = await quota.try_consume(user_id, n=1)
    if not decision:                      # refused: nothing was counted
        # decision.exhausted is "monthly" or "daily"; decision.message says
        # which cap and when it resets; decision.summary is the state now.
        ctx.session.push_error(ErrorCode.RATE_LIMITED, decision.message, frame.id)
        return
    try:
        ...stream the provider's answer...
    except ProviderError:
        if nothing_was_streamed:
            await quota.refund(user_id)   # give the message back
        raise

    await quota.summary(user_id)          -> QuotaSummary (plan, limits, used,
                                             remaining, resets_at, models...)
    await quota.allows_model(user_id, m)  -> bool: may this user's plan use model m

Semantics:
- ``try_consume`` is atomic on both backends (one conditional upsert, see
  ``storage.billing``): of any number of concurrent calls, exactly as many
  succeed as the monthly and daily caps allow, and a refused call changes
  nothing. ``n`` messages are counted against both caps at once.
- The caps come from the plan in force *now*, read from the subscription
  record (``bridge.billing.plans.entitlement``). Counters are keyed by the
  plan's period (the calendar month on the free plan, the paid period
  otherwise) and by the UTC day, so they reset when the period or day changes.
  Each period keeps its own count: a paid interlude in a free month (free,
  subscribe, cancel) finds the free month's count as it left it (issue 12).
  The day counter is one per user across plans.
- ``refund(user_id, n, consumed=decision)`` takes back up to ``n`` from the
  counters that ``decision`` counted on (the current ones without it) and
  never goes below zero; call it only for a message that was consumed and
  produced nothing (a provider failure before the first delta).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.billing.plans import Entitlement, PlanBook, entitlement
from protocol.frames import PlanInfo
from storage.base import now_ms
from storage.billing import NO_CAP, BillingStore, Usage


@dataclass(frozen=True, slots=True)
class QuotaSummary:
    plan: str
    status: str  # "free", or the subscription's status (active, trialing)
    provider: str | None
    models: tuple[str, ...]  # ("*",) = every model
    monthly_limit: int  # per period: the calendar month on free, the paid period otherwise
    monthly_used: int
    daily_limit: int | None  # None: no daily cap
    daily_used: int
    remaining: int  # what try_consume would allow now (the tighter of the two caps)
    resets_at: int  # ms: when the monthly counter resets (the period's end)
    day_resets_at: int  # ms: next UTC midnight
    cancel_at_period_end: bool = False

    # The names the AI feature's own fallback quota uses (actors.ai_service).
    @property
    def limit(self) -> int:
        return self.monthly_limit

    @property
    def used(self) -> int:
        return self.monthly_used

    def to_frame(self) -> PlanInfo:
        return PlanInfo(
            name=self.plan,
            ai_left=self.remaining,
            ai_month=self.monthly_limit,
            ai_month_used=self.monthly_used,
            resets=self.resets_at,
            ai_day=self.daily_limit,
            ai_day_used=self.daily_used if self.daily_limit is not None else None,
            models=list(self.models),
            ending=self.cancel_at_period_end,
        )


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    allowed: bool
    summary: QuotaSummary
    exhausted: str | None = None  # "monthly" | "daily" when refused
    # The counters an allowed consume counted on: pass them to ``refund`` so a
    # refund lands where the message was counted, even after a plan change.
    period_key: str | None = None
    day_key: str | None = None

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def message(self) -> str:
        s = self.summary
        if self.allowed:
            return f"{s.remaining} AI messages left."
        if self.exhausted == "daily":
            return (
                f"Daily AI message limit of the {s.plan} plan reached ({s.daily_limit}); "
                f"it resets at {s.day_resets_at} (ms since epoch)."
            )
        return (
            f"AI message limit of the {s.plan} plan reached ({s.monthly_limit} this period); "
            f"it resets at {s.resets_at} (ms since epoch)."
        )


class QuotaService:
    def __init__(
        self,
        plans: PlanBook,
        store: BillingStore,
        *,
        grace_ms: int = 0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.plans = plans
        self._store = store
        self._grace_ms = grace_ms
        self._clock = clock

    async def entitlement(self, user_id: str) -> Entitlement:
        record = await self._store.get_subscription(user_id)
        return entitlement(record, self.plans, self._clock(), grace_ms=self._grace_ms)

    async def summary(self, user_id: str) -> QuotaSummary:
        return (await self.snapshot(user_id))[1]

    async def snapshot(self, user_id: str) -> tuple[Entitlement, QuotaSummary]:
        """The plan in force and the quota under it, from one read of each."""
        ent = await self.entitlement(user_id)
        return ent, _summarise(ent, await self._store.usage(user_id, period_key=ent.period_key))

    async def try_consume(self, user_id: str, n: int = 1) -> QuotaDecision:
        _check_n(n)
        ent = await self.entitlement(user_id)
        daily = ent.plan.ai_daily
        usage = await self._store.consume(
            user_id,
            period_key=ent.period_key,
            day_key=ent.day_key,
            n=n,
            period_cap=ent.plan.ai_monthly,
            day_cap=NO_CAP if daily is None else daily,
        )
        if usage is not None:
            return QuotaDecision(True, _summarise(ent, usage), None, ent.period_key, ent.day_key)
        summary = _summarise(ent, await self._store.usage(user_id, period_key=ent.period_key))
        month_left = summary.monthly_limit - summary.monthly_used
        exhausted = "monthly" if month_left < n else "daily"
        return QuotaDecision(False, summary, exhausted)

    async def refund(
        self, user_id: str, n: int = 1, *, consumed: QuotaDecision | None = None
    ) -> QuotaSummary:
        """Give ``n`` back: to the counters ``consumed`` counted on when given (the
        period of the message, even if the plan changed since), else the current ones."""
        _check_n(n)
        ent = await self.entitlement(user_id)
        period_key = (consumed.period_key if consumed else None) or ent.period_key
        day_key = (consumed.day_key if consumed else None) or ent.day_key
        await self._store.refund(user_id, period_key=period_key, day_key=day_key, n=n)
        return _summarise(ent, await self._store.usage(user_id, period_key=ent.period_key))

    async def allows_model(self, user_id: str, model: str) -> bool:
        return (await self.entitlement(user_id)).plan.allows_model(model)


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")


def _summarise(ent: Entitlement, usage: Usage | None) -> QuotaSummary:
    """Counters on another key than the entitlement's count as zero: a new window."""
    plan = ent.plan
    month_used = usage.period_used if usage and usage.period_key == ent.period_key else 0
    day_used = usage.day_used if usage and usage.day_key == ent.day_key else 0
    remaining = max(plan.ai_monthly - month_used, 0)
    if plan.ai_daily is not None:
        remaining = min(remaining, max(plan.ai_daily - day_used, 0))
    return QuotaSummary(
        plan=plan.name,
        status=ent.status,
        provider=ent.provider,
        models=plan.models,
        monthly_limit=plan.ai_monthly,
        monthly_used=month_used,
        daily_limit=plan.ai_daily,
        daily_used=day_used,
        remaining=remaining,
        resets_at=ent.period_end,
        day_resets_at=ent.day_end,
        cancel_at_period_end=ent.cancel_at_period_end,
    )
