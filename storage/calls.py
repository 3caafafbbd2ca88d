"""Call history: one record per call and one per user it involved.

Written by ``CallActor`` (insert at start, save on every transition) and
read by the REST bridge. Participants rows also carry the optional quality
feedback each participant may leave once the call has ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .base import Store

CALL_COLUMNS = (
    "id, room_id, caller_id, kind, is_group, state, outcome, started_at, answered_at, ended_at"
)
PARTICIPANT_COLUMNS = "user_id, status, device, joined_at, left_at, rating, comment, rated_at"


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


def from_rows(row: Sequence[object], participants: Sequence[Sequence[object]]) -> CallRecord:
    (id_, room, caller, kind, is_group, state, outcome, started, answered, ended) = row
    return CallRecord(
        id=str(id_),
        room_id=str(room),
        caller_id=str(caller),
        kind=str(kind),
        is_group=bool(is_group),
        state=str(state),
        outcome=None if outcome is None else str(outcome),
        started_at=int(started),  # type: ignore[call-overload]
        answered_at=None if answered is None else int(answered),  # type: ignore[call-overload]
        ended_at=None if ended is None else int(ended),  # type: ignore[call-overload]
        participants=tuple(CallParticipantRecord(*p) for p in participants),  # type: ignore[arg-type]
    )


class CallStore(Protocol):
    async def insert_call(self, call: CallRecord) -> None:
        """The call and all its participants, in one transaction."""

    async def save_call(self, call: CallRecord, users: Sequence[str] | None = None) -> None:
        """Update the call row and upsert the participants named (all when None)."""

    async def get_call(self, call_id: str) -> CallRecord | None: ...

    async def list_calls(
        self, user_id: str, *, room_id: str | None, before: str | None, limit: int
    ) -> list[CallRecord]:
        """Calls that involved ``user_id``, newest first, ids below ``before``."""

    async def set_feedback(
        self, call_id: str, user_id: str, rating: int, comment: str, at: int
    ) -> bool:
        """Store (replace) the user's feedback; False if the user has no row in the call."""

    async def end_unfinished(self, outcome: str, at: int) -> list[str]:
        """End every call not yet ended (a node stopped mid-call); returns their ids."""


def calls_store(store: Store) -> CallStore:
    if store.backend == "sqlite":
        from .calls_sqlite import SqliteCallStore

        return SqliteCallStore(store)  # type: ignore[arg-type]
    from .calls_postgres import PostgresCallStore

    return PostgresCallStore(store)  # type: ignore[arg-type]
