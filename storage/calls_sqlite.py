"""``CallStore`` on SQLite, through the main store's connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .calls import (
    CALL_COLUMNS,
    PARTICIPANT_COLUMNS,
    CallRecord,
    call_row,
    from_rows,
    participant_rows,
)
from .schema import chunks, prefixed
from .sqlite import SqliteStore, _transaction

_INSERT_CALL = f"INSERT INTO calls ({CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPDATE_CALL = "UPDATE calls SET state = ?, outcome = ?, answered_at = ?, ended_at = ? WHERE id = ?"
_UPSERT_PARTICIPANT = (
    "INSERT INTO call_participants"
    " (call_id, user_id, position, status, device, joined_at, left_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, user_id) DO UPDATE SET"
    " status = excluded.status, device = excluded.device,"
    " joined_at = excluded.joined_at, left_at = excluded.left_at"
)


def _load(c: sqlite3.Connection, rows: list[Any]) -> list[CallRecord]:
    ids = [r[0] for r in rows]
    found: dict[str, list[tuple[Any, ...]]] = {i: [] for i in ids}
    for part in chunks(ids, 400):
        marks = ", ".join("?" * len(part))
        for call_id, *row in c.execute(
            f"SELECT call_id, {PARTICIPANT_COLUMNS} FROM call_participants"
            f" WHERE call_id IN ({marks}) ORDER BY call_id, position",
            part,
        ):
            found[call_id].append(tuple(row))
    return [from_rows(r, found[r[0]]) for r in rows]


class SqliteCallStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def insert_call(self, call: CallRecord) -> None:
        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute(_INSERT_CALL, call_row(call))
                c.executemany(_UPSERT_PARTICIPANT, participant_rows(call, None))

        await self._store._write(run)

    async def save_call(self, call: CallRecord, users: Sequence[str] | None = None) -> None:
        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute(
                    _UPDATE_CALL,
                    (call.state, call.outcome, call.answered_at, call.ended_at, call.id),
                )
                c.executemany(_UPSERT_PARTICIPANT, participant_rows(call, users))

        await self._store._write(run)

    async def get_call(self, call_id: str) -> CallRecord | None:
        def run(c: sqlite3.Connection) -> CallRecord | None:
            with _transaction(c, "DEFERRED"):
                row = c.execute(
                    f"SELECT {CALL_COLUMNS} FROM calls WHERE id = ?", (call_id,)
                ).fetchone()
                return None if row is None else _load(c, [row])[0]

        return await self._store._read(run)

    async def list_calls(
        self, user_id: str, *, room_id: str | None, before: str | None, limit: int
    ) -> list[CallRecord]:
        if limit <= 0:
            return []
        where = ["me.user_id = ?"]
        params: list[Any] = [user_id]
        if room_id is not None:
            where.append("c.room_id = ?")
            params.append(room_id)
        if before is not None:
            where.append("c.id < ?")
            params.append(before)
        sql = (
            f"SELECT {prefixed('c', CALL_COLUMNS)} FROM call_participants me"
            f" JOIN calls c ON c.id = me.call_id WHERE {' AND '.join(where)}"
            " ORDER BY c.id DESC LIMIT ?"
        )

        def run(c: sqlite3.Connection) -> list[CallRecord]:
            with _transaction(c, "DEFERRED"):
                return _load(c, c.execute(sql, (*params, limit)).fetchall())

        return await self._store._read(run)

    async def set_feedback(
        self, call_id: str, user_id: str, rating: int, comment: str, at: int
    ) -> bool:
        count = await self._store._write(
            lambda c: (
                c.execute(
                    "UPDATE call_participants SET rating = ?, comment = ?, rated_at = ?"
                    " WHERE call_id = ? AND user_id = ?",
                    (rating, comment, at, call_id, user_id),
                ).rowcount
            )
        )
        return bool(count == 1)

    async def end_unfinished(self, outcome: str, at: int) -> list[str]:
        def run(c: sqlite3.Connection) -> list[str]:
            with _transaction(c):
                ids = [r[0] for r in c.execute("SELECT id FROM calls WHERE state <> 'ended'")]
                for part in chunks(ids, 400):
                    marks = ", ".join("?" * len(part))
                    c.execute(
                        f"UPDATE calls SET state = 'ended', outcome = ?, ended_at = ?"
                        f" WHERE id IN ({marks})",
                        (outcome, at, *part),
                    )
                    c.execute(
                        "UPDATE call_participants SET status = CASE"
                        " WHEN status IN ('joined', 'reconnecting') THEN 'left'"
                        " ELSE 'missed' END,"
                        " left_at = CASE WHEN status IN ('joined', 'reconnecting')"
                        " THEN ? ELSE left_at END"
                        f" WHERE call_id IN ({marks}) AND status IN"
                        " ('joined', 'reconnecting', 'ringing')",
                        (at, *part),
                    )
                return ids

        return await self._store._write(run)
