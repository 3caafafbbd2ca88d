"""``CallStore`` on PostgreSQL, through the main store's pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from .calls import (
    CALL_COLUMNS,
    PARTICIPANT_COLUMNS,
    CallRecord,
    call_row,
    from_rows,
    participant_rows,
)
from .postgres import PostgresStore
from .schema import prefixed

_INSERT_CALL = (
    f"INSERT INTO calls ({CALL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)
_UPDATE_CALL = (
    "UPDATE calls SET state = $2, outcome = $3, answered_at = $4, ended_at = $5 WHERE id = $1"
)
_UPSERT_PARTICIPANT = (
    "INSERT INTO call_participants"
    " (call_id, user_id, position, status, device, joined_at, left_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (call_id, user_id) DO UPDATE SET"
    " status = excluded.status, device = excluded.device,"
    " joined_at = excluded.joined_at, left_at = excluded.left_at"
)


async def _load(c: asyncpg.Connection, rows: list[Any]) -> list[CallRecord]:
    ids = [r[0] for r in rows]
    found: dict[str, list[tuple[Any, ...]]] = {i: [] for i in ids}
    if ids:
        for call_id, *row in await c.fetch(
            f"SELECT call_id, {PARTICIPANT_COLUMNS} FROM call_participants"
            " WHERE call_id = ANY($1::text[]) ORDER BY call_id, position",
            ids,
        ):
            found[call_id].append(tuple(row))
    return [from_rows(tuple(r), found[r[0]]) for r in rows]


class PostgresCallStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def insert_call(self, call: CallRecord) -> None:
        async def run(c: asyncpg.Connection) -> None:
            await c.execute(_INSERT_CALL, *call_row(call))
            await c.executemany(_UPSERT_PARTICIPANT, participant_rows(call, None))

        await self._store._in_transaction(run)

    async def save_call(self, call: CallRecord, users: Sequence[str] | None = None) -> None:
        async def run(c: asyncpg.Connection) -> None:
            await c.execute(
                _UPDATE_CALL, call.id, call.state, call.outcome, call.answered_at, call.ended_at
            )
            rows = participant_rows(call, users)
            if rows:
                await c.executemany(_UPSERT_PARTICIPANT, rows)

        await self._store._in_transaction(run)

    async def get_call(self, call_id: str) -> CallRecord | None:
        async def run(c: asyncpg.Connection) -> CallRecord | None:
            row = await c.fetchrow(f"SELECT {CALL_COLUMNS} FROM calls WHERE id = $1", call_id)
            return None if row is None else (await _load(c, [row]))[0]

        return await self._store._in_transaction(run, readonly=True)

    async def list_calls(
        self, user_id: str, *, room_id: str | None, before: str | None, limit: int
    ) -> list[CallRecord]:
        if limit <= 0:
            return []
        sql = (
            f"SELECT {prefixed('c', CALL_COLUMNS)} FROM call_participants me"
            " JOIN calls c ON c.id = me.call_id"
            " WHERE me.user_id = $1"
            " AND ($2::text IS NULL OR c.room_id = $2)"
            " AND ($3::text IS NULL OR c.id < $3)"
            " ORDER BY c.id DESC LIMIT $4"
        )

        async def run(c: asyncpg.Connection) -> list[CallRecord]:
            return await _load(c, await c.fetch(sql, user_id, room_id, before, limit))

        return await self._store._in_transaction(run, readonly=True)

    async def set_feedback(
        self, call_id: str, user_id: str, rating: int, comment: str, at: int
    ) -> bool:
        status = await self._store._run(
            self._store._pool.execute,
            "UPDATE call_participants SET rating = $3, comment = $4, rated_at = $5"
            " WHERE call_id = $1 AND user_id = $2",
            call_id,
            user_id,
            rating,
            comment,
            at,
        )
        return bool(status == "UPDATE 1")

    async def end_unfinished(self, outcome: str, at: int) -> list[str]:
        async def run(c: asyncpg.Connection) -> list[str]:
            rows = await c.fetch(
                "UPDATE calls SET state = 'ended', outcome = $1, ended_at = $2"
                " WHERE state <> 'ended' RETURNING id",
                outcome,
                at,
            )
            ids = [r[0] for r in rows]
            if ids:
                await c.execute(
                    "UPDATE call_participants SET"
                    " left_at = CASE WHEN status IN ('joined', 'reconnecting')"
                    " THEN $2 ELSE left_at END,"
                    " status = CASE WHEN status IN ('joined', 'reconnecting')"
                    " THEN 'left' ELSE 'missed' END"
                    " WHERE call_id = ANY($1::text[])"
                    " AND status IN ('joined', 'reconnecting', 'ringing')",
                    ids,
                    at,
                )
            return ids

        return await self._store._in_transaction(run)
