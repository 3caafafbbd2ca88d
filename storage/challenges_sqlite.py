"""``ChallengesStore`` on SQLite: each decision runs inside one write transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

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
from .sqlite import SqliteStore, _transaction


class SqliteChallenges:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def put_code(self, code: OtpCode) -> None:
        await self._store._write(
            lambda c: c.execute(
                f"INSERT OR REPLACE INTO otp_codes ({OTP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        )

    async def check_code(
        self, purpose: str, target: str, candidate_hash: str, now: int
    ) -> CodeCheck:
        def run(c: sqlite3.Connection) -> CodeCheck:
            with _transaction(c):
                row = c.execute(
                    f"SELECT {OTP_COLUMNS} FROM otp_codes WHERE purpose = ? AND target = ?",
                    (purpose, target),
                ).fetchone()
                check, action = judge_code(
                    None if row is None else OtpCode(*row), candidate_hash, now
                )
                if action == "count":
                    c.execute(
                        "UPDATE otp_codes SET attempts = attempts + 1"
                        " WHERE purpose = ? AND target = ?",
                        (purpose, target),
                    )
                elif action == "delete":
                    c.execute(
                        "DELETE FROM otp_codes WHERE purpose = ? AND target = ?", (purpose, target)
                    )
            return check

        return await self._store._write(run)

    async def delete_code(self, purpose: str, target: str) -> None:
        await self._store._write(
            lambda c: c.execute(
                "DELETE FROM otp_codes WHERE purpose = ? AND target = ?", (purpose, target)
            )
        )

    async def hit(self, hits: Mapping[str, LimitRule], now: int) -> int:
        keys = sorted(hits)

        def run(c: sqlite3.Connection) -> int:
            with _transaction(c):
                marks = ", ".join("?" * len(keys))
                counters = {
                    r[0]: Counter(*r[1:])
                    for r in c.execute(
                        f"SELECT {COUNTER_COLUMNS} FROM rate_limits WHERE key IN ({marks})", keys
                    )
                }
                wait, updated = judge_hits(hits, counters, now)
                c.executemany(
                    f"INSERT OR REPLACE INTO rate_limits ({COUNTER_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (k, u.window_start, u.count, u.next_at, u.expires_at)
                        for k, u in updated.items()
                    ],
                )
            return wait

        return await self._store._write(run) if keys else 0

    async def clear_counters(self, keys: Sequence[str]) -> None:
        if keys:
            await self._store._write(
                lambda c: c.executemany(
                    "DELETE FROM rate_limits WHERE key = ?", [(k,) for k in keys]
                )
            )

    async def live_counters(self, keys: Sequence[str], now: int) -> set[str]:
        if not keys:
            return set()
        marks = ", ".join("?" * len(keys))
        rows = await self._store._read(
            lambda c: c.execute(
                f"SELECT key FROM rate_limits WHERE key IN ({marks}) AND expires_at > ?",
                (*keys, now),
            ).fetchall()
        )
        return {str(r[0]) for r in rows}

    async def put_oidc_state(self, state: OidcState) -> None:
        await self._store._write(
            lambda c: c.execute(
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
        )

    async def take_oidc_state(self, state_hash: str) -> OidcState | None:
        rows = await self._store._write(
            lambda c: c.execute(
                f"DELETE FROM oidc_states WHERE state_hash = ? RETURNING {OIDC_COLUMNS}",
                (state_hash,),
            ).fetchall()
        )
        return OidcState(*rows[0]) if rows else None

    async def purge_expired(self, now: int) -> None:
        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute("DELETE FROM otp_codes WHERE expires_at <= ?", (now,))
                c.execute("DELETE FROM rate_limits WHERE expires_at <= ?", (now,))
                c.execute("DELETE FROM oidc_states WHERE expires_at <= ?", (now,))

        await self._store._write(run)
