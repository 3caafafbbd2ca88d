"""Short-lived security state: one-time codes, rate-limit counters, OIDC state.

``challenges_store(store)`` gives the ``ChallengesStore`` on the store's
database. The decisions are pure functions here (``judge_code``,
``judge_hits``), tested without a database; the store only reads the rows,
calls them and writes the outcome, in one transaction, so two nodes racing on
one code or one counter cannot both win.

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

from storage.sql.database import Database
from storage.sql.dialect import Dialect
from storage.sql.statements import Execute, ExecuteMany, Fetch, FetchOne, Op

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


class ChallengesStore:
    """Each decision reads the rows, calls the pure judge and writes the
    outcome in one write transaction. On SQLite that transaction already
    excludes every other writer; on PostgreSQL the code row is read ``FOR
    UPDATE`` and counters, which may have no row yet, are locked by key
    (``Dialect.xact_lock``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put_code(self, code: OtpCode) -> None:
        """Store ``code``, replacing the target's previous one of that purpose."""
        await self._db.execute(
            f"INSERT INTO otp_codes ({OTP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (purpose, target) DO UPDATE SET code_hash = excluded.code_hash,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at,"
            " max_attempts = excluded.max_attempts, attempts = excluded.attempts",
            (
                code.purpose,
                code.target,
                code.code_hash,
                code.created_at,
                code.expires_at,
                code.max_attempts,
                code.attempts,
            ),
        )

    async def check_code(
        self, purpose: str, target: str, candidate_hash: str, now: int
    ) -> CodeCheck:
        return await self._db.write(
            _check_code(self._db.dialect, purpose, target, candidate_hash, now)
        )

    async def delete_code(self, purpose: str, target: str) -> None:
        await self._db.execute(
            "DELETE FROM otp_codes WHERE purpose = ? AND target = ?", (purpose, target)
        )

    async def hit(self, hits: Mapping[str, LimitRule], now: int) -> int:
        """0 when the hits were counted; else ms to wait, and nothing was counted."""
        if not hits:
            return 0
        return await self._db.write(_hit(self._db.dialect, hits, now))

    async def clear_counters(self, keys: Sequence[str]) -> None:
        if keys:
            d = self._db.dialect
            await self._db.execute(
                f"DELETE FROM rate_limits WHERE {d.in_list('key')}", (d.array(keys),)
            )

    async def live_counters(self, keys: Sequence[str], now: int) -> set[str]:
        """Which of ``keys`` have a counter that has not expired at ``now``."""
        if not keys:
            return set()
        d = self._db.dialect
        rows = await self._db.fetch(
            f"SELECT key FROM rate_limits WHERE {d.in_list('key')} AND expires_at > ?",
            (d.array(keys), now),
        )
        return {str(r[0]) for r in rows}

    async def put_oidc_state(self, state: OidcState) -> None:
        await self._db.execute(
            f"INSERT INTO oidc_states ({OIDC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                state.state_hash,
                state.kind,
                state.provider,
                state.nonce,
                state.code_verifier,
                state.binding_hash,
                state.device,
                state.created_at,
                state.expires_at,
            ),
        )

    async def take_oidc_state(self, state_hash: str) -> OidcState | None:
        row = await self._db.fetchone(
            f"DELETE FROM oidc_states WHERE state_hash = ? RETURNING {OIDC_COLUMNS}",
            (state_hash,),
            write=True,
        )
        return None if row is None else OidcState(*row)

    async def purge_expired(self, now: int) -> None:
        """Drop expired codes, counters and states (they are ignored anyway)."""
        await self._db.write(_purge_expired(now))


def challenges_store(store: Store) -> ChallengesStore:
    return ChallengesStore(store.db)


# First key of the two-key lock on a rate-limit key: keeps these locks apart
# from the migration lock and from anyone else's.
_LOCK_CLASS = 8003


def _check_code(
    d: Dialect, purpose: str, target: str, candidate_hash: str, now: int
) -> Op[CodeCheck]:
    row = yield FetchOne(
        f"SELECT {OTP_COLUMNS} FROM otp_codes WHERE purpose = ? AND target = ?{d.for_update()}",
        (purpose, target),
    )
    check, action = judge_code(None if row is None else OtpCode(*row), candidate_hash, now)
    if action == "count":
        yield Execute(
            "UPDATE otp_codes SET attempts = attempts + 1 WHERE purpose = ? AND target = ?",
            (purpose, target),
        )
    elif action == "delete":
        yield Execute("DELETE FROM otp_codes WHERE purpose = ? AND target = ?", (purpose, target))
    return check


def _hit(d: Dialect, hits: Mapping[str, LimitRule], now: int) -> Op[int]:
    keys = sorted(hits)  # one lock order everywhere: no deadlock between nodes
    lock = d.xact_lock()
    if lock is not None:
        for key in keys:
            yield Execute(lock, (_LOCK_CLASS, key))
    rows = yield Fetch(
        f"SELECT {COUNTER_COLUMNS} FROM rate_limits WHERE {d.in_list('key')}", (d.array(keys),)
    )
    wait, updated = judge_hits(hits, {r[0]: Counter(*r[1:]) for r in rows}, now)
    if updated:
        yield ExecuteMany(
            f"INSERT INTO rate_limits ({COUNTER_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET window_start = excluded.window_start,"
            " count = excluded.count, next_at = excluded.next_at,"
            " expires_at = excluded.expires_at",
            [(k, u.window_start, u.count, u.next_at, u.expires_at) for k, u in updated.items()],
        )
    return wait


def _purge_expired(now: int) -> Op[None]:
    for table in ("otp_codes", "rate_limits", "oidc_states"):
        yield Execute(f"DELETE FROM {table} WHERE expires_at <= ?", (now,))


OTP_COLUMNS = "purpose, target, code_hash, created_at, expires_at, max_attempts, attempts"
COUNTER_COLUMNS = "key, window_start, count, next_at, expires_at"
OIDC_COLUMNS = (
    "state_hash, kind, provider, nonce, code_verifier, binding_hash, device, created_at, expires_at"
)
