"""Call history: one record per call and one per user it involved.

Written by ``CallActor`` (insert at start, save on every transition) and
read by the REST bridge. Participants rows also carry the optional quality
feedback each participant may leave once the call has ended.

One implementation for both databases: ``is_group`` is a boolean column on
PostgreSQL and an INTEGER on SQLite, so it is written as a Python bool and
read back through ``bool()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.sql.database import Database
from storage.sql.dialect import Dialect, register_unique
from storage.sql.schema import prefixed
from storage.sql.statements import Execute, ExecuteMany, Fetch, FetchOne, Op, Row

from .base import Store

CALL_COLUMNS = (
    "id, room_id, caller_id, kind, is_group, state, outcome, started_at, answered_at, ended_at"
)
PARTICIPANT_COLUMNS = "user_id, status, device, joined_at, left_at, rating, comment, rated_at"

register_unique(sqlite={"calls.id": "id"}, postgres={"calls_pkey": "id"})


@dataclass(frozen=True, slots=True)
class CallParticipantRecord:
    user_id: str
    status: str
    device: str | None = None
    joined_at: int | None = None
    left_at: int | None = None
    rating: int | None = None
    comment: str | None = None
    rated_at: int | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: str
    room_id: str
    caller_id: str
    kind: str  # audio | video
    is_group: bool
    state: str  # ringing | active | ended
    outcome: str | None
    started_at: int
    answered_at: int | None = None
    ended_at: int | None = None
    participants: tuple[CallParticipantRecord, ...] = ()

    @property
    def duration_ms(self) -> int | None:
        """Talk time: from the first answer to the end; None if never answered or not over."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at

    def participant(self, user_id: str) -> CallParticipantRecord | None:
        return next((p for p in self.participants if p.user_id == user_id), None)


def call_row(call: CallRecord) -> tuple[object, ...]:
    return (
        call.id,
        call.room_id,
        call.caller_id,
        call.kind,
        call.is_group,
        call.state,
        call.outcome,
        call.started_at,
        call.answered_at,
        call.ended_at,
    )


def participant_rows(call: CallRecord, users: Sequence[str] | None) -> list[tuple[object, ...]]:
    """Rows to upsert: (call_id, user_id, position, status, device, joined_at, left_at).

    Feedback columns are left out: the call's own saves never overwrite them.
    """
    wanted = None if users is None else set(users)
    return [
        (call.id, p.user_id, i, p.status, p.device, p.joined_at, p.left_at)
        for i, p in enumerate(call.participants)
        if wanted is None or p.user_id in wanted
    ]


def from_rows(row: Row, participants: Sequence[Row]) -> CallRecord:
    (id_, room, caller, kind, is_group, state, outcome, started, answered, ended) = row
    return CallRecord(
        id=str(id_),
        room_id=str(room),
        caller_id=str(caller),
        kind=str(kind),
        is_group=bool(is_group),
        state=str(state),
        outcome=None if outcome is None else str(outcome),
        started_at=int(started),
        answered_at=None if answered is None else int(answered),
        ended_at=None if ended is None else int(ended),
        participants=tuple(CallParticipantRecord(*p) for p in participants),
    )


_INSERT_CALL = f"INSERT INTO calls ({CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPDATE_CALL = "UPDATE calls SET state = ?, outcome = ?, answered_at = ?, ended_at = ? WHERE id = ?"
_UPSERT_PARTICIPANT = (
    "INSERT INTO call_participants"
    " (call_id, user_id, position, status, device, joined_at, left_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, user_id) DO UPDATE SET"
    " status = excluded.status, device = excluded.device,"
    " joined_at = excluded.joined_at, left_at = excluded.left_at"
)


def _with_participants(d: Dialect, rows: Sequence[Row]) -> Op[list[CallRecord]]:
    """The calls of ``rows`` (CALL_COLUMNS) with their participants, in invitation order."""
    found: dict[str, list[Row]] = {r[0]: [] for r in rows}
    if found:
        parts = yield Fetch(
            f"SELECT call_id, {PARTICIPANT_COLUMNS} FROM call_participants"
            f" WHERE {d.in_list('call_id')} ORDER BY call_id, position",
            (d.array(found),),
        )
        for call_id, *part in parts:
            found[call_id].append(part)
    return [from_rows(r, found[r[0]]) for r in rows]


def _save(call: CallRecord, users: Sequence[str] | None, *, insert: bool) -> Op[None]:
    if insert:
        yield Execute(_INSERT_CALL, call_row(call))
    else:
        yield Execute(
            _UPDATE_CALL, (call.state, call.outcome, call.answered_at, call.ended_at, call.id)
        )
    rows = participant_rows(call, users)
    if rows:
        yield ExecuteMany(_UPSERT_PARTICIPANT, rows)


def save_op(call: CallRecord, users: Sequence[str] | None, *, insert: bool) -> Op[None]:
    """The call's insert or update, for a transaction that does more (``storage.call_claims``)."""
    yield from _save(call, users, insert=insert)


def _get_call(d: Dialect, call_id: str) -> Op[CallRecord | None]:
    row = yield FetchOne(f"SELECT {CALL_COLUMNS} FROM calls WHERE id = ?", (call_id,))
    if row is None:
        return None
    calls = yield from _with_participants(d, [row])
    return calls[0]


def _list_calls(d: Dialect, sql: str, params: Sequence[Any]) -> Op[list[CallRecord]]:
    rows = yield Fetch(sql, params)
    return (yield from _with_participants(d, rows))


def _end_unfinished(d: Dialect, outcome: str, at: int) -> Op[list[str]]:
    rows = yield Fetch(
        "UPDATE calls SET state = 'ended', outcome = ?, ended_at = ?"
        " WHERE state <> 'ended' RETURNING id",
        (outcome, at),
    )
    ids = sorted(r[0] for r in rows)
    if ids:
        # Both databases evaluate every SET expression on the row as it was,
        # so left_at still sees the old status.
        yield Execute(
            "UPDATE call_participants SET"
            " status = CASE WHEN status IN ('joined', 'reconnecting')"
            " THEN 'left' ELSE 'missed' END,"
            " left_at = CASE WHEN status IN ('joined', 'reconnecting')"
            " THEN ? ELSE left_at END"
            f" WHERE {d.in_list('call_id')}"
            " AND status IN ('joined', 'reconnecting', 'ringing')",
            (at, d.array(ids)),
        )
    return ids


class CallStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_call(self, call: CallRecord) -> None:
        """The call and all its participants, in one transaction."""
        await self._db.write(_save(call, None, insert=True))

    async def save_call(self, call: CallRecord, users: Sequence[str] | None = None) -> None:
        """Update the call row and upsert the participants named (all when None)."""
        await self._db.write(_save(call, users, insert=False))

    async def get_call(self, call_id: str) -> CallRecord | None:
        return await self._db.read(_get_call(self._db.dialect, call_id))

    async def list_calls(
        self, user_id: str, *, room_id: str | None, before: str | None, limit: int
    ) -> list[CallRecord]:
        """Calls that involved ``user_id``, newest first, ids below ``before``."""
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        # Only the filters given go into the text: at most four statement
        # texts, each with a plan that can use its index.
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
        return await self._db.read(_list_calls(self._db.dialect, sql, (*params, limit)))

    async def set_feedback(
        self, call_id: str, user_id: str, rating: int, comment: str, at: int
    ) -> bool:
        """Store (replace) the user's feedback; False if the user has no row in the call."""
        changed = await self._db.execute(
            "UPDATE call_participants SET rating = ?, comment = ?, rated_at = ?"
            " WHERE call_id = ? AND user_id = ?",
            (rating, comment, at, call_id, user_id),
        )
        return changed == 1

    async def end_unfinished(self, outcome: str, at: int) -> list[str]:
        """End every call not yet ended (a node stopped mid-call); returns their ids."""
        return await self._db.write(_end_unfinished(self._db.dialect, outcome, at))


def calls_store(store: Store) -> CallStore:
    return CallStore(store.db)
