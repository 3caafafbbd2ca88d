"""PostgreSQL twin of ``storage.room_pins`` (runs on PostgresStore's pool)."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]

from .messages_rich import RoomEvent
from .postgres import PostgresStore
from .room_pins import Pin, RoomPins


async def _insert_event(c: asyncpg.Connection, room_id: str, e: RoomEvent) -> None:
    await c.execute(
        "INSERT INTO room_events (room_id, ev, kind, seq, frame, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        room_id,
        e.ev,
        e.kind,
        e.seq,
        e.frame,
        e.created_at,
    )


class PostgresPinStore:
    def __init__(self, store: PostgresStore) -> None:
        self._s = store

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        rows: list[Any] = await self._s._run(self._s._pool.fetch, sql, *args)
        return rows

    async def load(self, room_id: str) -> RoomPins:
        timer = await self._fetch("SELECT disappear_ms FROM rooms WHERE id = $1", room_id)
        pins = await self._fetch(
            "SELECT seq, pinned_by, pinned_at FROM room_pins WHERE room_id = $1"
            " ORDER BY pinned_at, seq",
            room_id,
        )
        return RoomPins(
            int(timer[0][0]) if timer else 0, [Pin(int(p[0]), p[1], int(p[2])) for p in pins]
        )

    async def pin(self, room_id: str, pin: Pin, event: RoomEvent) -> None:
        async def run(c: asyncpg.Connection) -> None:
            await c.execute(
                "INSERT INTO room_pins (room_id, seq, pinned_by, pinned_at)"
                " VALUES ($1, $2, $3, $4)",
                room_id,
                pin.seq,
                pin.pinned_by,
                pin.pinned_at,
            )
            await _insert_event(c, room_id, event)

        await self._s._in_transaction(run)

    async def unpin(self, room_id: str, seq: int, event: RoomEvent) -> None:
        async def run(c: asyncpg.Connection) -> None:
            await c.execute("DELETE FROM room_pins WHERE room_id = $1 AND seq = $2", room_id, seq)
            await _insert_event(c, room_id, event)

        await self._s._in_transaction(run)

    async def set_disappearing(self, room_id: str, ms: int, event: RoomEvent) -> None:
        async def run(c: asyncpg.Connection) -> None:
            await c.execute("UPDATE rooms SET disappear_ms = $2 WHERE id = $1", room_id, ms)
            await _insert_event(c, room_id, event)

        await self._s._in_transaction(run)

    async def expired(self, now: int, limit: int) -> list[tuple[str, int]]:
        rows = await self._fetch(
            "SELECT room_id, seq FROM messages"
            " WHERE expires_at IS NOT NULL AND deleted_at IS NULL AND expires_at <= $1"
            " ORDER BY expires_at LIMIT $2",
            now,
            limit,
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    async def next_expiry(self) -> int | None:
        rows = await self._fetch(
            "SELECT MIN(expires_at) FROM messages"
            " WHERE expires_at IS NOT NULL AND deleted_at IS NULL"
        )
        return None if not rows or rows[0][0] is None else int(rows[0][0])
