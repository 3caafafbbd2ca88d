"""PostgreSQL twin of ``storage.messages_rich`` (runs on PostgresStore's pool).

Search uses ``to_tsvector('simple', text)`` (GIN index from migration 0005)
with ``plainto_tsquery``, ranked by ``ts_rank``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from .base import StoredMessage
from .messages_rich import EraseEdit, MemberCursor, ReactionCount, RoomEvent, ScrubReply
from .postgres import PostgresStore
from .schema import MESSAGE_COLUMNS, prefixed

_INSERT_EVENT = (
    "INSERT INTO room_events (room_id, ev, kind, seq, frame, created_at)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)


async def _insert_event(c: asyncpg.Connection, room_id: str, e: RoomEvent) -> None:
    await c.execute(_INSERT_EVENT, room_id, e.ev, e.kind, e.seq, e.frame, e.created_at)


class PostgresRichMessageStore:
    def __init__(self, store: PostgresStore) -> None:
        self._s = store

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        rows: list[Any] = await self._s._run(self._s._pool.fetch, sql, *args)
        return rows

    async def message_at(self, room_id: str, seq: int) -> StoredMessage | None:
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq = $2",
            room_id,
            seq,
        )
        return StoredMessage(*rows[0]) if rows else None

    async def member_cursors(self, room_id: str) -> list[MemberCursor]:
        rows = await self._fetch(
            "SELECT user_id, role, read_seq, delivered_seq FROM room_members WHERE room_id = $1",
            room_id,
        )
        return [MemberCursor(*r) for r in rows]

    async def last_ev(self, room_id: str) -> int:
        rows = await self._fetch("SELECT MAX(ev) FROM room_events WHERE room_id = $1", room_id)
        return int(rows[0][0] or 0)

    async def edit(self, room_id: str, seq: int, text: str, event: RoomEvent) -> bool:
        async def run(c: asyncpg.Connection) -> bool:
            status = await c.execute(
                "UPDATE messages SET text = $3, edited_at = $4"
                " WHERE room_id = $1 AND seq = $2 AND deleted_at IS NULL",
                room_id,
                seq,
                text,
                event.created_at,
            )
            if status != "UPDATE 1":
                return False
            await _insert_event(c, room_id, event)
            return True

        return await self._s._in_transaction(run)

    async def delete_for_all(
        self,
        room_id: str,
        seq: int,
        event: RoomEvent,
        scrub_reply: ScrubReply,
        erased: EraseEdit,
    ) -> list[tuple[int, str]]:
        async def run(c: asyncpg.Connection) -> list[tuple[int, str]]:
            await c.execute(
                "UPDATE messages SET text = '', meta = NULL, deleted_at = $3"
                " WHERE room_id = $1 AND seq = $2",
                room_id,
                seq,
                event.created_at,
            )
            await c.execute(
                "DELETE FROM message_reactions WHERE room_id = $1 AND seq = $2", room_id, seq
            )
            # A pin never outlives its message (issue 18).
            await c.execute("DELETE FROM room_pins WHERE room_id = $1 AND seq = $2", room_id, seq)
            # Earlier edits carried the text: they now say "deleted", each
            # under its own ev (a replay must show every ev exactly once).
            edits = await c.fetch(
                "SELECT ev FROM room_events WHERE room_id = $1 AND seq = $2 AND kind = 'edit'",
                room_id,
                seq,
            )
            if edits:
                await c.executemany(
                    "UPDATE room_events SET kind = 'delete', frame = $3"
                    " WHERE room_id = $1 AND ev = $2",
                    [(room_id, int(r[0]), erased(int(r[0]))) for r in edits],
                )
            rows = await c.fetch(
                "SELECT seq, meta FROM messages WHERE room_id = $1 AND reply_to = $2"
                " AND meta IS NOT NULL",
                room_id,
                seq,
            )
            scrubbed = [(int(r[0]), scrub_reply(r[1])) for r in rows]
            if scrubbed:
                await c.executemany(
                    "UPDATE messages SET meta = $3 WHERE room_id = $1 AND seq = $2",
                    [(room_id, s, meta) for s, meta in scrubbed],
                )
            await _insert_event(c, room_id, event)
            return scrubbed

        return await self._s._in_transaction(run)

    async def react(
        self, room_id: str, seq: int, user_id: str, emoji: str, off: bool, event: RoomEvent
    ) -> bool:
        async def run(c: asyncpg.Connection) -> bool:
            if off:
                status = await c.execute(
                    "DELETE FROM message_reactions"
                    " WHERE room_id = $1 AND seq = $2 AND user_id = $3 AND emoji = $4",
                    room_id,
                    seq,
                    user_id,
                    emoji,
                )
                changed = bool(status == "DELETE 1")
            else:
                status = await c.execute(
                    "INSERT INTO message_reactions (room_id, seq, user_id, emoji, created_at)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    room_id,
                    seq,
                    user_id,
                    emoji,
                    event.created_at,
                )
                changed = bool(status == "INSERT 0 1")
            if changed:
                await _insert_event(c, room_id, event)
            return changed

        return await self._s._in_transaction(run)

    async def set_receipt(
        self, room_id: str, user_id: str, read_seq: int, delivered_seq: int, event: RoomEvent
    ) -> None:
        async def run(c: asyncpg.Connection) -> None:
            await c.execute(
                "UPDATE room_members SET read_seq = GREATEST(read_seq, $3),"
                " delivered_seq = GREATEST(delivered_seq, $4) WHERE room_id = $1 AND user_id = $2",
                room_id,
                user_id,
                read_seq,
                delivered_seq,
            )
            await _insert_event(c, room_id, event)

        await self._s._in_transaction(run)

    async def hide(self, room_id: str, user_id: str, seq: int) -> None:
        await self._s._run(
            self._s._pool.execute,
            "INSERT INTO message_hidden (room_id, user_id, seq) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            room_id,
            user_id,
            seq,
        )

    async def events_after(self, room_id: str, after_ev: int, limit: int) -> list[RoomEvent]:
        if limit <= 0:
            return []
        rows = await self._fetch(
            "SELECT ev, kind, seq, frame, created_at FROM room_events"
            " WHERE room_id = $1 AND ev > $2 ORDER BY ev LIMIT $3",
            room_id,
            after_ev,
            limit,
        )
        return [RoomEvent(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def reactions(
        self, room_id: str, seqs: Sequence[int], user_id: str
    ) -> dict[int, list[ReactionCount]]:
        if not seqs:
            return {}
        rows = await self._fetch(
            "SELECT seq, emoji, count(*), bool_or(user_id = $3) FROM message_reactions"
            " WHERE room_id = $1 AND seq = ANY($2::bigint[])"
            " GROUP BY seq, emoji ORDER BY seq, min(created_at), emoji",
            room_id,
            list(seqs),
            user_id,
        )
        found: dict[int, list[ReactionCount]] = {}
        for seq, emoji, count, mine in rows:
            found.setdefault(int(seq), []).append(ReactionCount(emoji, int(count), bool(mine)))
        return found

    async def hidden(self, room_id: str, user_id: str, seqs: Sequence[int]) -> set[int]:
        if not seqs:
            return set()
        rows = await self._fetch(
            "SELECT seq FROM message_hidden WHERE user_id = $1 AND room_id = $2"
            " AND seq = ANY($3::bigint[])",
            user_id,
            room_id,
            list(seqs),
        )
        return {int(r[0]) for r in rows}

    async def unread(self, room_id: str, user_id: str, read_seq: int) -> int:
        rows = await self._fetch(
            "SELECT count(*) FROM messages WHERE room_id = $1 AND seq > $2"
            " AND sender_id <> $3 AND deleted_at IS NULL",
            room_id,
            read_seq,
            user_id,
        )
        return int(rows[0][0])

    async def search(
        self, user_id: str, terms: Sequence[str], room_id: str | None, limit: int, offset: int
    ) -> list[StoredMessage]:
        if not terms or limit <= 0:
            return []
        in_room = " AND m.room_id = $5" if room_id is not None else ""
        args: list[object] = [user_id, " ".join(terms), limit, max(offset, 0)]
        if room_id is not None:
            args.append(room_id)
        rows = await self._fetch(
            f"SELECT {prefixed('m', MESSAGE_COLUMNS)}"
            " FROM messages m"
            " JOIN room_members me ON me.room_id = m.room_id AND me.user_id = $1,"
            " plainto_tsquery('simple', $2) q"
            " WHERE to_tsvector('simple', m.text) @@ q AND m.deleted_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = $1"
            "   AND h.room_id = m.room_id AND h.seq = m.seq)"
            f"{in_room}"
            " ORDER BY ts_rank(to_tsvector('simple', m.text), q) DESC, m.created_at DESC, m.id"
            " LIMIT $3 OFFSET $4",
            *args,
        )
        return [StoredMessage(*r) for r in rows]
