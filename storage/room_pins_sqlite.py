"""SQLite twin of ``storage.room_pins`` (runs on SqliteStore's connections)."""

from __future__ import annotations

import sqlite3

from .messages_rich import RoomEvent
from .room_pins import Pin, RoomPins
from .sqlite import SqliteStore, _transaction


def _insert_event(c: sqlite3.Connection, room_id: str, e: RoomEvent) -> None:
    c.execute(
        "INSERT INTO room_events (room_id, ev, kind, seq, frame, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (room_id, e.ev, e.kind, e.seq, e.frame, e.created_at),
    )


class SqlitePinStore:
    def __init__(self, store: SqliteStore) -> None:
        self._s = store

    async def load(self, room_id: str) -> RoomPins:
        def run(c: sqlite3.Connection) -> RoomPins:
            row = c.execute("SELECT disappear_ms FROM rooms WHERE id = ?", (room_id,)).fetchone()
            pins = c.execute(
                "SELECT seq, pinned_by, pinned_at FROM room_pins WHERE room_id = ?"
                " ORDER BY pinned_at, seq",
                (room_id,),
            ).fetchall()
            return RoomPins(int(row[0]) if row else 0, [Pin(*p) for p in pins])

        return await self._s._read(run)

    async def pin(self, room_id: str, pin: Pin, event: RoomEvent) -> None:
        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute(
                    "INSERT INTO room_pins (room_id, seq, pinned_by, pinned_at)"
                    " VALUES (?, ?, ?, ?)",
                    (room_id, pin.seq, pin.pinned_by, pin.pinned_at),
                )
                _insert_event(c, room_id, event)

        await self._s._write(run)

    async def unpin(self, room_id: str, seq: int, event: RoomEvent) -> None:
        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute("DELETE FROM room_pins WHERE room_id = ? AND seq = ?", (room_id, seq))
                _insert_event(c, room_id, event)

        await self._s._write(run)

    async def set_disappearing(self, room_id: str, ms: int, event: RoomEvent) -> None:
        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute("UPDATE rooms SET disappear_ms = ? WHERE id = ?", (ms, room_id))
                _insert_event(c, room_id, event)

        await self._s._write(run)

    async def expired(self, now: int, limit: int) -> list[tuple[str, int]]:
        rows = await self._s._read(
            lambda c: c.execute(
                "SELECT room_id, seq FROM messages"
                " WHERE expires_at IS NOT NULL AND deleted_at IS NULL AND expires_at <= ?"
                " ORDER BY expires_at LIMIT ?",
                (now, limit),
            ).fetchall()
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    async def next_expiry(self) -> int | None:
        row = await self._s._read(
            lambda c: c.execute(
                "SELECT MIN(expires_at) FROM messages"
                " WHERE expires_at IS NOT NULL AND deleted_at IS NULL"
            ).fetchone()
        )
        return None if row is None or row[0] is None else int(row[0])
