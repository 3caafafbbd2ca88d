"""Short-lived security state: one-time codes, rate-limit counters, OIDC state.

``challenges_store(store)`` picks the backend twin (``challenges_sqlite`` or
``challenges_postgres``). The decisions are pure functions here
(``judge_code``, ``judge_hits``), tested without a database; each backend
only reads the rows, calls them and writes the outcome, in one transaction,
so two nodes racing on one code or one counter cannot both win.

Rules:
- One live code per (purpose, target). It is deleted when used, when it
  expires and when its attempts run out: a code works at most once.
- A set of rate-limit hits is all or nothing: if any counter refuses, no
  counter moves ("a refused request changes nothing").
- OIDC states are taken (deleted and returned) in one statement: each one
  serves one callback, however many arrive.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from .base import Store


@dataclass(frozen=True, slots=True)
class OtpCode:
    purpose: str  # 'signin' | 'reset' | 'verify_email'
    target: str  # E.164 number or folded email
    code_hash: str
    created_at: int
    expires_at: int
    max_attempts: int
    attempts: int = 0


class CodeVerdict(Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"  # a live code exists; this was not it
    ABSENT = "absent"  # none was sent, or it expired, was used or ran out of attempts


@dataclass(frozen=True, slots=True)
class CodeCheck:
    verdict: CodeVerdict
    attempts_left: int = 0


def judge_code(code: OtpCode | None, candidate_hash: str, now: int) -> tuple[CodeCheck, str]:
    """The verdict on one attempt, and what to do with the row: 'keep', 'count' or 'delete'."""
    if code is None:
        return CodeCheck(CodeVerdict.ABSENT), "keep"
    if code.expires_at <= now or code.attempts >= code.max_attempts:
        return CodeCheck(CodeVerdict.ABSENT), "delete"
    if hmac.compare_digest(code.code_hash, candidate_hash):
        return CodeCheck(CodeVerdict.ACCEPTED), "delete"
    left = code.max_attempts - code.attempts - 1
    return CodeCheck(CodeVerdict.WRONG, left), ("count" if left > 0 else "delete")


@dataclass(frozen=True, slots=True)
class LimitRule:
    """At most ``limit`` hits per ``window_ms``; after the first ``free`` hits
    of a window each hit also closes the key for ``backoff_ms``, doubling each
    time (capped at the window)."""

    limit: int
    window_ms: int
    backoff_ms: int = 0
    free: int = 0
    cost: int = 1  # what this hit counts for (e.g. the number of phone hashes checked)


@dataclass(frozen=True, slots=True)
class Counter:
    window_start: int
    count: int
    next_at: int
    expires_at: int


def backoff_after(rule: LimitRule, count: int) -> int:
    """How long the key stays closed after its ``count``-th hit of the window."""
    if rule.backoff_ms <= 0 or count <= rule.free:
        return 0
    return int(min(rule.window_ms, rule.backoff_ms * 2 ** (count - rule.free - 1)))


def judge_hits(
    hits: Mapping[str, LimitRule], counters: Mapping[str, Counter], now: int
) -> tuple[int, dict[str, Counter]]:
    """(0, counters to write) when every key admits a hit now, else
    (milliseconds until all of them would, {}) and nothing is to change."""
    wait = 0
    for key, rule in hits.items():
        c = counters.get(key)
        if rule.cost > rule.limit:
            # Could never fit in a window; callers bound the cost before asking.
            wait = max(wait, rule.window_ms)
        if c is None or c.expires_at <= now:
            continue
        if now < c.next_at:
            wait = max(wait, c.next_at - now)
        if now < c.window_start + rule.window_ms and c.count + rule.cost > rule.limit:
            wait = max(wait, c.window_start + rule.window_ms - now)
    if wait:
        return wait, {}
    updated: dict[str, Counter] = {}
    for key, rule in hits.items():
        c = counters.get(key)
        if c is None or now >= c.window_start + rule.window_ms:
            start, count = now, rule.cost
        else:
            start, count = c.window_start, c.count + rule.cost
        # Without a back-off the key closes nothing. (Setting next_at = now
        # would refuse a concurrent hit whose clock read came a moment
        # earlier, or another node's clock a moment behind: a spurious 429.)
        backoff = backoff_after(rule, count)
        next_at = now + backoff if backoff else 0
        updated[key] = Counter(start, count, next_at, max(start + rule.window_ms, next_at))
    return 0, updated


@dataclass(frozen=True, slots=True)
class OidcState:
    state_hash: str
    kind: str  # 'code' (a browser flow) | 'nonce' (a mobile app's ID token)
    provider: str
    nonce: str
    code_verifier: str
    binding_hash: str  # hash of the browser cookie the flow is bound to ('' for nonce)
    device: str
    created_at: int
    expires_at: int


class ChallengesStore(Protocol):
    async def put_code(self, code: OtpCode) -> None:
        """Store ``code``, replacing the target's previous one of that purpose."""

    async def check_code(
        self, purpose: str, target: str, candidate_hash: str, now: int
    ) -> CodeCheck: ...
    async def delete_code(self, purpose: str, target: str) -> None: ...

    async def hit(self, hits: Mapping[str, LimitRule], now: int) -> int:
        """0 when the hits were counted; else ms to wait, and nothing was counted."""

    async def clear_counters(self, keys: Sequence[str]) -> None: ...
    async def live_counters(self, keys: Sequence[str], now: int) -> set[str]:
        """Which of ``keys`` have a counter that has not expired at ``now``."""

    async def put_oidc_state(self, state: OidcState) -> None: ...
    async def take_oidc_state(self, state_hash: str) -> OidcState | None: ...

    async def purge_expired(self, now: int) -> None:
        """Drop expired codes, counters and states (they are ignored anyway)."""


def challenges_store(store: Store) -> ChallengesStore:
    if store.backend == "sqlite":
        from .challenges_sqlite import SqliteChallenges

        return SqliteChallenges(store)  # type: ignore[arg-type]
    if store.backend == "postgres":
        from .challenges_postgres import PostgresChallenges

        return PostgresChallenges(store)  # type: ignore[arg-type]
    raise ValueError(f"no challenges store for backend {store.backend!r}")


OTP_COLUMNS = "purpose, target, code_hash, created_at, expires_at, max_attempts, attempts"
COUNTER_COLUMNS = "key, window_start, count, next_at, expires_at"
OIDC_COLUMNS = (
    "state_hash, kind, provider, nonce, code_verifier, binding_hash, device, created_at, expires_at"
)
