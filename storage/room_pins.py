"""Storage of pinned messages and the disappearing-messages timer (issue 18).

Written once for both databases on the main store's ``Database``.

Rules:
- Like every change (``storage.messages_rich``), a pin, an unpin or a new
  timer is written in ONE transaction with its ``room_events`` row.
- Delete-for-everyone drops the message's pin in its own transaction
  (``messages_rich``), so a pin never outlives its message.
- ``expired`` and ``next_expiry`` see only messages not deleted yet: a swept
  message leaves the sweeper's view in the transaction that erases it.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.sql.database import Database
from storage.sql.statements import Execute, Fetch, FetchOne, Op

from .base import Store
from .messages_rich import RoomEvent, with_event


@dataclass(frozen=True, slots=True)
class Pin:
    seq: int
    pinned_by: str
    pinned_at: int


@dataclass(frozen=True, slots=True)
class RoomPins:
    """What a room actor loads: its timer (ms, 0 = off) and pins, oldest first."""

    disappear_ms: int
    pins: list[Pin]


def _load(room_id: str) -> Op[RoomPins]:
    timer = yield FetchOne("SELECT disappear_ms FROM rooms WHERE id = ?", (room_id,))
    pins = yield Fetch(
        "SELECT seq, pinned_by, pinned_at FROM room_pins WHERE room_id = ? ORDER BY pinned_at, seq",
        (room_id,),
    )
    return RoomPins(
        0 if timer is None else int(timer[0]),
        [Pin(int(p[0]), p[1], int(p[2])) for p in pins],
    )


class PinStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self, room_id: str) -> RoomPins:
        # One read transaction: the timer and the pins from the same snapshot.
        return await self._db.read(_load(room_id))

    async def pin(self, room_id: str, pin: Pin, event: RoomEvent) -> None:
        insert = Execute(
            "INSERT INTO room_pins (room_id, seq, pinned_by, pinned_at) VALUES (?, ?, ?, ?)",
            (room_id, pin.seq, pin.pinned_by, pin.pinned_at),
        )
        await self._db.write(with_event(insert, room_id, event))

    async def unpin(self, room_id: str, seq: int, event: RoomEvent) -> None:
        delete = Execute("DELETE FROM room_pins WHERE room_id = ? AND seq = ?", (room_id, seq))
        await self._db.write(with_event(delete, room_id, event))

    async def set_disappearing(self, room_id: str, ms: int, event: RoomEvent) -> None:
        timer = Execute("UPDATE rooms SET disappear_ms = ? WHERE id = ?", (ms, room_id))
        await self._db.write(with_event(timer, room_id, event))

    async def expired(self, now: int, limit: int) -> list[tuple[str, int]]:
        """(room_id, seq) of messages not deleted whose ``expires_at`` <= ``now``, oldest first."""
        rows = await self._db.fetch(
            "SELECT room_id, seq FROM messages"
            " WHERE expires_at IS NOT NULL AND deleted_at IS NULL AND expires_at <= ?"
            " ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    async def next_expiry(self) -> int | None:
        """The earliest ``expires_at`` of a message not deleted yet, or None."""
        at = await self._db.fetchval(
            "SELECT MIN(expires_at) FROM messages"
            " WHERE expires_at IS NOT NULL AND deleted_at IS NULL"
        )
        return None if at is None else int(at)


def pins_store(store: Store) -> PinStore:
    return PinStore(store.db)
