"""``ChallengesStore`` on PostgreSQL: row locks (codes) and advisory locks
(counters, which may not have a row yet) make each decision atomic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg  # type: ignore[import-untyped]

from .challenges import (
    COUNTER_COLUMNS,
    OIDC_COLUMNS,
    OTP_COLUMNS,
    CodeCheck,
    Counter,
    LimitRule,
    OidcState,
    OtpCode,
    judge_code,
    judge_hits,
)
from .postgres import PostgresStore

# First key of the two-key advisory lock: keeps rate-limit locks apart from
# the migration lock and from anyone else's.
_LOCK_CLASS = 8003


class PostgresChallenges:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool = store._pool

    async def put_code(self, code: OtpCode) -> None:
        await self._store._run(
            self._pool.execute,
            f"INSERT INTO otp_codes ({OTP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (purpose, target) DO UPDATE SET code_hash = excluded.code_hash,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at,"
            " max_attempts = excluded.max_attempts, attempts = excluded.attempts",
            code.purpose,
            code.target,
            code.code_hash,
            code.created_at,
            code.expires_at,
            code.max_attempts,
            code.attempts,
        )

    async def check_code(
        self, purpose: str, target: str, candidate_hash: str, now: int
    ) -> CodeCheck:
        async def run(c: asyncpg.Connection) -> CodeCheck:
            row = await c.fetchrow(
                f"SELECT {OTP_COLUMNS} FROM otp_codes WHERE purpose = $1 AND target = $2"
                " FOR UPDATE",
                purpose,
                target,
            )
            check, action = judge_code(None if row is None else OtpCode(*row), candidate_hash, now)
            if action == "count":
                await c.execute(
                    "UPDATE otp_codes SET attempts = attempts + 1"
                    " WHERE purpose = $1 AND target = $2",
                    purpose,
                    target,
                )
            elif action == "delete":
                await c.execute(
                    "DELETE FROM otp_codes WHERE purpose = $1 AND target = $2", purpose, target
                )
            return check

        return await self._store._in_transaction(run)

    async def delete_code(self, purpose: str, target: str) -> None:
        await self._store._run(
            self._pool.execute,
            "DELETE FROM otp_codes WHERE purpose = $1 AND target = $2",
            purpose,
            target,
        )

    async def hit(self, hits: Mapping[str, LimitRule], now: int) -> int:
        keys = sorted(hits)  # one lock order everywhere: no deadlock between nodes
        if not keys:
            return 0

        async def run(c: asyncpg.Connection) -> int:
            for key in keys:
                await c.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_CLASS, key)
            rows = await c.fetch(
                f"SELECT {COUNTER_COLUMNS} FROM rate_limits WHERE key = ANY($1::text[])", keys
            )
            wait, updated = judge_hits(hits, {r[0]: Counter(*r[1:]) for r in rows}, now)
            if updated:
                await c.executemany(
                    f"INSERT INTO rate_limits ({COUNTER_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
                    " ON CONFLICT (key) DO UPDATE SET window_start = excluded.window_start,"
                    " count = excluded.count, next_at = excluded.next_at,"
                    " expires_at = excluded.expires_at",
                    [
                        (k, u.window_start, u.count, u.next_at, u.expires_at)
                        for k, u in updated.items()
                    ],
                )
            return wait

        return await self._store._in_transaction(run)

    async def clear_counters(self, keys: Sequence[str]) -> None:
        if keys:
            await self._store._run(
                self._pool.execute,
                "DELETE FROM rate_limits WHERE key = ANY($1::text[])",
                list(keys),
            )

    async def live_counters(self, keys: Sequence[str], now: int) -> set[str]:
        if not keys:
            return set()
        rows = await self._store._run(
            self._pool.fetch,
            "SELECT key FROM rate_limits WHERE key = ANY($1::text[]) AND expires_at > $2",
            list(keys),
            now,
        )
        return {str(r[0]) for r in rows}

    async def put_oidc_state(self, state: OidcState) -> None:
        await self._store._run(
            self._pool.execute,
            f"INSERT INTO oidc_states ({OIDC_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            state.state_hash,
            state.kind,
            state.provider,
            state.nonce,
            state.code_verifier,
            state.binding_hash,
            state.device,
            state.created_at,
            state.expires_at,
        )

    async def take_oidc_state(self, state_hash: str) -> OidcState | None:
        row = await self._store._run(
            self._pool.fetchrow,
            f"DELETE FROM oidc_states WHERE state_hash = $1 RETURNING {OIDC_COLUMNS}",
            state_hash,
        )
        return None if row is None else OidcState(*row)

    async def purge_expired(self, now: int) -> None:
        async def run(c: asyncpg.Connection) -> None:
            for table in ("otp_codes", "rate_limits", "oidc_states"):
                await c.execute(f"DELETE FROM {table} WHERE expires_at <= $1", now)

        await self._store._in_transaction(run)
