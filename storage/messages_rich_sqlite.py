"""SQLite twin of ``storage.messages_rich`` (runs on SqliteStore's connections).

Search uses the FTS5 table ``messages_fts`` (external content, kept in step
with ``messages`` by triggers from migration 0005), ranked by bm25.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .base import StoredMessage
from .messages_rich import EraseEdit, MemberCursor, ReactionCount, RoomEvent, ScrubReply
from .schema import MESSAGE_COLUMNS, chunks, prefixed
from .sqlite import SqliteStore, _transaction

_CHUNK = 400

_INSERT_EVENT = (
    "INSERT INTO room_events (room_id, ev, kind, seq, frame, created_at) VALUES (?, ?, ?, ?, ?, ?)"
)


def _insert_event(c: sqlite3.Connection, room_id: str, e: RoomEvent) -> None:
    c.execute(_INSERT_EVENT, (room_id, e.ev, e.kind, e.seq, e.frame, e.created_at))


class SqliteRichMessageStore:
    def __init__(self, store: SqliteStore) -> None:
        self._s = store

    async def message_at(self, room_id: str, seq: int) -> StoredMessage | None:
        row = await self._s._read(
            lambda c: c.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq = ?",
                (room_id, seq),
            ).fetchone()
        )
        return None if row is None else StoredMessage(*row)

    async def member_cursors(self, room_id: str) -> list[MemberCursor]:
        rows = await self._s._read(
            lambda c: c.execute(
                "SELECT user_id, role, read_seq, delivered_seq FROM room_members WHERE room_id = ?",
                (room_id,),
            ).fetchall()
        )
        return [MemberCursor(*r) for r in rows]

    async def last_ev(self, room_id: str) -> int:
        row = await self._s._read(
            lambda c: c.execute(
                "SELECT MAX(ev) FROM room_events WHERE room_id = ?", (room_id,)
            ).fetchone()
        )
        return int(row[0] or 0)

    async def edit(self, room_id: str, seq: int, text: str, event: RoomEvent) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                cur = c.execute(
                    "UPDATE messages SET text = ?, edited_at = ?"
                    " WHERE room_id = ? AND seq = ? AND deleted_at IS NULL",
                    (text, event.created_at, room_id, seq),
                )
                if cur.rowcount != 1:
                    return False
                _insert_event(c, room_id, event)
                return True

        return await self._s._write(run)

    async def delete_for_all(
        self,
        room_id: str,
        seq: int,
        event: RoomEvent,
        scrub_reply: ScrubReply,
        erased: EraseEdit,
    ) -> list[tuple[int, str]]:
        def run(c: sqlite3.Connection) -> list[tuple[int, str]]:
            with _transaction(c):
                c.execute(
                    "UPDATE messages SET text = '', meta = NULL, deleted_at = ?"
                    " WHERE room_id = ? AND seq = ?",
                    (event.created_at, room_id, seq),
                )
                c.execute(
                    "DELETE FROM message_reactions WHERE room_id = ? AND seq = ?", (room_id, seq)
                )
                # A pin never outlives its message (issue 18).
                c.execute("DELETE FROM room_pins WHERE room_id = ? AND seq = ?", (room_id, seq))
                # Earlier edits carried the text: they now say "deleted", each
                # under its own ev (a replay must show every ev exactly once).
                edits = c.execute(
                    "SELECT ev FROM room_events WHERE room_id = ? AND seq = ? AND kind = 'edit'",
                    (room_id, seq),
                ).fetchall()
                c.executemany(
                    "UPDATE room_events SET kind = 'delete', frame = ?"
                    " WHERE room_id = ? AND ev = ?",
                    [(erased(int(ev)), room_id, ev) for (ev,) in edits],
                )
                scrubbed = []
                for reply_seq, meta in c.execute(
                    "SELECT seq, meta FROM messages WHERE room_id = ? AND reply_to = ?"
                    " AND meta IS NOT NULL",
                    (room_id, seq),
                ).fetchall():
                    scrubbed.append((int(reply_seq), scrub_reply(meta)))
                c.executemany(
                    "UPDATE messages SET meta = ? WHERE room_id = ? AND seq = ?",
                    [(meta, room_id, s) for s, meta in scrubbed],
                )
                _insert_event(c, room_id, event)
                return scrubbed

        return await self._s._write(run)

    async def react(
        self, room_id: str, seq: int, user_id: str, emoji: str, off: bool, event: RoomEvent
    ) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                if off:
                    cur = c.execute(
                        "DELETE FROM message_reactions"
                        " WHERE room_id = ? AND seq = ? AND user_id = ? AND emoji = ?",
                        (room_id, seq, user_id, emoji),
                    )
                else:
                    cur = c.execute(
                        "INSERT INTO message_reactions (room_id, seq, user_id, emoji, created_at)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (room_id, seq, user_id, emoji, event.created_at),
                    )
                if cur.rowcount != 1:
                    return False
                _insert_event(c, room_id, event)
                return True

        return await self._s._write(run)

    async def set_receipt(
        self, room_id: str, user_id: str, read_seq: int, delivered_seq: int, event: RoomEvent
    ) -> None:
        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute(
                    "UPDATE room_members SET read_seq = MAX(read_seq, ?),"
                    " delivered_seq = MAX(delivered_seq, ?) WHERE room_id = ? AND user_id = ?",
                    (read_seq, delivered_seq, room_id, user_id),
                )
                _insert_event(c, room_id, event)

        await self._s._write(run)

    async def hide(self, room_id: str, user_id: str, seq: int) -> None:
        await self._s._write(
            lambda c: c.execute(
                "INSERT INTO message_hidden (room_id, user_id, seq) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (room_id, user_id, seq),
            )
        )

    async def events_after(self, room_id: str, after_ev: int, limit: int) -> list[RoomEvent]:
        if limit <= 0:
            return []
        rows = await self._s._read(
            lambda c: c.execute(
                "SELECT ev, kind, seq, frame, created_at FROM room_events"
                " WHERE room_id = ? AND ev > ? ORDER BY ev LIMIT ?",
                (room_id, after_ev, limit),
            ).fetchall()
        )
        return [RoomEvent(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def reactions(
        self, room_id: str, seqs: Sequence[int], user_id: str
    ) -> dict[int, list[ReactionCount]]:
        wanted = list(dict.fromkeys(seqs))

        def run(c: sqlite3.Connection) -> dict[int, list[ReactionCount]]:
            found: dict[int, list[ReactionCount]] = {}
            for part in chunks(wanted, _CHUNK):
                marks = ", ".join("?" * len(part))
                for seq, emoji, count, mine in c.execute(
                    "SELECT seq, emoji, COUNT(*), MAX(user_id = ?) FROM message_reactions"
                    f" WHERE room_id = ? AND seq IN ({marks})"
                    " GROUP BY seq, emoji ORDER BY seq, MIN(created_at), emoji",
                    (user_id, room_id, *part),
                ):
                    found.setdefault(seq, []).append(ReactionCount(emoji, count, bool(mine)))
            return found

        return await self._s._read(run) if wanted else {}

    async def hidden(self, room_id: str, user_id: str, seqs: Sequence[int]) -> set[int]:
        wanted = list(dict.fromkeys(seqs))

        def run(c: sqlite3.Connection) -> set[int]:
            found: set[int] = set()
            for part in chunks(wanted, _CHUNK):
                marks = ", ".join("?" * len(part))
                found.update(
                    r[0]
                    for r in c.execute(
                        "SELECT seq FROM message_hidden WHERE user_id = ? AND room_id = ?"
                        f" AND seq IN ({marks})",
                        (user_id, room_id, *part),
                    )
                )
            return found

        return await self._s._read(run) if wanted else set()

    async def unread(self, room_id: str, user_id: str, read_seq: int) -> int:
        row = await self._s._read(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM messages WHERE room_id = ? AND seq > ?"
                " AND sender_id <> ? AND deleted_at IS NULL",
                (room_id, read_seq, user_id),
            ).fetchone()
        )
        return int(row[0])

    async def search(
        self, user_id: str, terms: Sequence[str], room_id: str | None, limit: int, offset: int
    ) -> list[StoredMessage]:
        if not terms or limit <= 0:
            return []
        # Each term quoted: FTS5 syntax in user input (NEAR, *, -, ") is text.
        match = " ".join('"' + t.replace('"', '""') + '"' for t in terms)
        in_room = " AND m.room_id = ?" if room_id is not None else ""
        params: list[object] = [user_id, match, user_id]
        if room_id is not None:
            params.append(room_id)
        params += [limit, max(offset, 0)]
        sql = (
            f"SELECT {prefixed('m', MESSAGE_COLUMNS)} FROM messages_fts f"
            " JOIN messages m ON m.rowid = f.rowid"
            " JOIN room_members me ON me.room_id = m.room_id AND me.user_id = ?"
            " WHERE messages_fts MATCH ? AND m.deleted_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = ?"
            "   AND h.room_id = m.room_id AND h.seq = m.seq)"
            f"{in_room}"
            " ORDER BY bm25(messages_fts), m.created_at DESC, m.id LIMIT ? OFFSET ?"
        )
        rows = await self._s._read(lambda c: c.execute(sql, params).fetchall())
        return [StoredMessage(*r) for r in rows]
