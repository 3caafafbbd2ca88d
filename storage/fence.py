"""The fencing check of room leases (issue 13; see ``storage.leases``)."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import TypeVar

from storage.sql.dialect import Dialect
from storage.sql.statements import Fetch, FetchOne, Op

from .errors import Fenced

T = TypeVar("T")

# The room lease a room actor holds, set in the actor's own task: every write
# that task makes through ``Database.write`` is fenced (edits, reactions,
# receipts, pins), not only the message batches. Unset on a single node.
ROOM_FENCE: ContextVar[tuple[str, int] | None] = ContextVar("room_fence", default=None)


def fence_op(d: Dialect, fences: Mapping[str, int]) -> Op[None]:
    """Lock each room's lease row if it still carries our token; ``Fenced`` otherwise."""
    if len(fences) == 1:
        ((room, token),) = fences.items()
        row = yield FetchOne(
            f"SELECT room_id FROM room_leases WHERE room_id = ? AND token = ?{d.for_update()}",
            (room, token),
        )
        if row is None:
            raise Fenced([room])
        return
    rooms = list(fences)
    rows = yield Fetch(
        "SELECT l.room_id FROM room_leases l"
        f" JOIN (SELECT * FROM {d.table(('room_id', 'token'), ('text', 'bigint'))}) f"
        f" ON f.room_id = l.room_id AND f.token = l.token{d.for_update()}",
        d.table_params(((r, fences[r]) for r in rooms), 2),
    )
    held = {r[0] for r in rows}
    if len(held) != len(rooms):
        raise Fenced([r for r in rooms if r not in held])


def fenced(d: Dialect, fences: Mapping[str, int], op: Op[T]) -> Op[T]:
    """``op`` preceded by the fence check, in the same transaction."""
    yield from fence_op(d, fences)
    result: T = yield from op
    return result
