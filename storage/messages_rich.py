"""Storage of rich messaging: edits, deletes, reactions, receipts, hiding, the
per-room change-event log and full-text search.

Written once for both databases on the main store's ``Database``; search is
the one real difference and asks the dialect (``Dialect.text_search``:
FTS5 ranked by bm25 on SQLite, ``to_tsvector('simple', ...)`` ranked by
``ts_rank`` on PostgreSQL).

Rules:
- Every change and the ``room_events`` row announcing it are written in ONE
  transaction: a change is never stored without its event, nor an event
  without its change, so a resume that replays the log sees exactly what
  storage holds.
- ``ev`` is chosen by the room actor (one writer per room); the primary key
  (room_id, ev) turns a stale actor into a ``Conflict`` instead of a fork.
- Delete-for-everyone erases content everywhere it was copied: the message's
  text and meta, its reactions, the text in earlier edit events and the
  preview in replies to it (``scrub_reply``), and its pin (``room_pins``).
  An earlier edit event keeps its row and its ``ev``; its frame becomes
  ``erased(ev)`` (a delete notice that names that same ``ev``), so the log
  replays gap-free with no ``ev`` twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from storage.sql.database import Database
from storage.sql.schema import MESSAGE_COLUMNS, prefixed
from storage.sql.statements import Execute, ExecuteMany, Fetch, Op

from .base import Store, StoredMessage

# Rewrites a reply's meta JSON so its preview no longer holds deleted content.
ScrubReply = Callable[[str], str]
# The frame an erased edit event (its ``ev`` given) is replayed as from now on.
EraseEdit = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class MemberCursor:
    user_id: str
    role: str
    read_seq: int
    delivered_seq: int


@dataclass(frozen=True, slots=True)
class ReactionCount:
    emoji: str
    count: int
    mine: bool


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """One row of the change-event log; ``frame`` is the encoded push."""

    ev: int
    kind: str  # edit | delete | react | rcpt | pin | unpin | disappear
    seq: int | None
    frame: bytes
    created_at: int


def insert_event(room_id: str, e: RoomEvent) -> Execute:
    """The ``room_events`` row of a change, for the op that writes the change."""
    return Execute(
        "INSERT INTO room_events (room_id, ev, kind, seq, frame, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (room_id, e.ev, e.kind, e.seq, e.frame, e.created_at),
    )


def _changed_with_event(change: Execute, room_id: str, event: RoomEvent) -> Op[bool]:
    """``change``, and its event only if it changed a row."""
    changed = yield change
    if changed != 1:
        return False
    yield insert_event(room_id, event)
    return True


def with_event(change: Execute, room_id: str, event: RoomEvent) -> Op[None]:
    """``change`` and its event: run it with ``Database.write``, one transaction."""
    yield change
    yield insert_event(room_id, event)


def _delete_for_all(
    room_id: str, seq: int, event: RoomEvent, scrub_reply: ScrubReply, erased: EraseEdit
) -> Op[list[tuple[int, str]]]:
    yield Execute(
        "UPDATE messages SET text = '', meta = NULL, deleted_at = ? WHERE room_id = ? AND seq = ?",
        (event.created_at, room_id, seq),
    )
    yield Execute("DELETE FROM message_reactions WHERE room_id = ? AND seq = ?", (room_id, seq))
    # A pin never outlives its message (issue 18).
    yield Execute("DELETE FROM room_pins WHERE room_id = ? AND seq = ?", (room_id, seq))
    # Earlier edits carried the text: they now say "deleted", each under its
    # own ev (a replay must show every ev exactly once).
    edits = yield Fetch(
        "SELECT ev FROM room_events WHERE room_id = ? AND seq = ? AND kind = 'edit'",
        (room_id, seq),
    )
    if edits:
        yield ExecuteMany(
            "UPDATE room_events SET kind = 'delete', frame = ? WHERE room_id = ? AND ev = ?",
            [(erased(int(r[0])), room_id, int(r[0])) for r in edits],
        )
    replies = yield Fetch(
        "SELECT seq, meta FROM messages WHERE room_id = ? AND reply_to = ? AND meta IS NOT NULL",
        (room_id, seq),
    )
    scrubbed = [(int(r[0]), scrub_reply(r[1])) for r in replies]
    if scrubbed:
        yield ExecuteMany(
            "UPDATE messages SET meta = ? WHERE room_id = ? AND seq = ?",
            [(meta, room_id, s) for s, meta in scrubbed],
        )
    yield insert_event(room_id, event)
    return scrubbed


class RichMessageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def message_at(self, room_id: str, seq: int) -> StoredMessage | None:
        row = await self._db.fetchone(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq = ?",
            (room_id, seq),
        )
        return None if row is None else StoredMessage(*row)

    async def member_cursors(self, room_id: str) -> list[MemberCursor]:
        rows = await self._db.fetch(
            "SELECT user_id, role, read_seq, delivered_seq FROM room_members WHERE room_id = ?",
            (room_id,),
        )
        return [MemberCursor(*r) for r in rows]

    async def last_ev(self, room_id: str) -> int:
        ev = await self._db.fetchval(
            "SELECT MAX(ev) FROM room_events WHERE room_id = ?", (room_id,)
        )
        return int(ev or 0)

    async def edit(self, room_id: str, seq: int, text: str, event: RoomEvent) -> bool:
        """Replace the text of a message not deleted; False (nothing written) otherwise."""
        edit = Execute(
            "UPDATE messages SET text = ?, edited_at = ?"
            " WHERE room_id = ? AND seq = ? AND deleted_at IS NULL",
            (text, event.created_at, room_id, seq),
        )
        return await self._db.write(_changed_with_event(edit, room_id, event))

    async def delete_for_all(
        self,
        room_id: str,
        seq: int,
        event: RoomEvent,
        scrub_reply: ScrubReply,
        erased: EraseEdit,
    ) -> list[tuple[int, str]]:
        """Tombstone ``seq`` and erase its copies; returns (seq, new meta) of scrubbed replies."""
        return await self._db.write(_delete_for_all(room_id, seq, event, scrub_reply, erased))

    async def react(
        self, room_id: str, seq: int, user_id: str, emoji: str, off: bool, event: RoomEvent
    ) -> bool:
        """Add (or remove) one reaction; False and nothing written when it was already so."""
        if off:
            change = Execute(
                "DELETE FROM message_reactions"
                " WHERE room_id = ? AND seq = ? AND user_id = ? AND emoji = ?",
                (room_id, seq, user_id, emoji),
            )
        else:
            change = Execute(
                "INSERT INTO message_reactions (room_id, seq, user_id, emoji, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (room_id, seq, user_id, emoji, event.created_at),
            )
        return await self._db.write(_changed_with_event(change, room_id, event))

    async def set_receipt(
        self, room_id: str, user_id: str, read_seq: int, delivered_seq: int, event: RoomEvent
    ) -> None:
        d = self._db.dialect
        cursors = Execute(
            f"UPDATE room_members SET read_seq = {d.greatest('read_seq', '?')},"
            f" delivered_seq = {d.greatest('delivered_seq', '?')}"
            " WHERE room_id = ? AND user_id = ?",
            (read_seq, delivered_seq, room_id, user_id),
        )
        await self._db.write(with_event(cursors, room_id, event))

    async def hide(self, room_id: str, user_id: str, seq: int) -> None:
        await self._db.execute(
            "INSERT INTO message_hidden (room_id, user_id, seq) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (room_id, user_id, seq),
        )

    async def events_after(self, room_id: str, after_ev: int, limit: int) -> list[RoomEvent]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        rows = await self._db.fetch(
            "SELECT ev, kind, seq, frame, created_at FROM room_events"
            " WHERE room_id = ? AND ev > ? ORDER BY ev LIMIT ?",
            (room_id, after_ev, limit),
        )
        return [RoomEvent(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def reactions(
        self, room_id: str, seqs: Sequence[int], user_id: str
    ) -> dict[int, list[ReactionCount]]:
        if not seqs:
            return {}
        d = self._db.dialect
        rows = await self._db.fetch(
            "SELECT seq, emoji, COUNT(*), MAX(CASE WHEN user_id = ? THEN 1 ELSE 0 END)"
            f" FROM message_reactions WHERE room_id = ? AND {d.in_list('seq', 'bigint')}"
            " GROUP BY seq, emoji ORDER BY seq, MIN(created_at), emoji",
            (user_id, room_id, d.array(set(seqs))),
        )
        found: dict[int, list[ReactionCount]] = {}
        for seq, emoji, count, mine in rows:
            found.setdefault(int(seq), []).append(ReactionCount(emoji, int(count), bool(mine)))
        return found

    async def hidden(self, room_id: str, user_id: str, seqs: Sequence[int]) -> set[int]:
        if not seqs:
            return set()
        d = self._db.dialect
        rows = await self._db.fetch(
            "SELECT seq FROM message_hidden WHERE user_id = ? AND room_id = ?"
            f" AND {d.in_list('seq', 'bigint')}",
            (user_id, room_id, d.array(set(seqs))),
        )
        return {int(r[0]) for r in rows}

    async def unread(self, room_id: str, user_id: str, read_seq: int) -> int:
        """Messages after ``read_seq`` from others, not deleted."""
        count = await self._db.fetchval(
            "SELECT COUNT(*) FROM messages WHERE room_id = ? AND seq > ?"
            " AND sender_id <> ? AND deleted_at IS NULL",
            (room_id, read_seq, user_id),
        )
        return int(count)

    async def search(
        self, user_id: str, terms: Sequence[str], room_id: str | None, limit: int, offset: int
    ) -> list[StoredMessage]:
        """Best match first; only rooms ``user_id`` is in; never deleted or hidden ones."""
        if not terms or limit <= 0:
            return []
        match, rank, query = self._db.dialect.text_search("messages", "m", terms)
        in_room = " AND m.room_id = ?" if room_id is not None else ""
        params: list[object] = [query, user_id, user_id]
        if room_id is not None:
            params.append(room_id)
        params += [limit, max(offset, 0)]
        rows = await self._db.fetch(
            f"SELECT {prefixed('m', MESSAGE_COLUMNS)} FROM messages m {match}"
            " JOIN room_members me ON me.room_id = m.room_id AND me.user_id = ?"
            " WHERE m.deleted_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = ?"
            "   AND h.room_id = m.room_id AND h.seq = m.seq)"
            f"{in_room}"
            f" ORDER BY {rank}, m.created_at DESC, m.id LIMIT ? OFFSET ?",
            params,
        )
        return [StoredMessage(*r) for r in rows]


def rich_store(store: Store) -> RichMessageStore:
    return RichMessageStore(store.db)
