"""Storage of rich messaging: edits, deletes, reactions, receipts, hiding, the
per-room change-event log and full-text search.

``rich_store(store)`` picks the backend twin (``messages_rich_sqlite`` /
``messages_rich_postgres``), which runs on the main store's connections.

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
from typing import Protocol

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


class RichMessageStore(Protocol):
    async def message_at(self, room_id: str, seq: int) -> StoredMessage | None: ...
    async def member_cursors(self, room_id: str) -> list[MemberCursor]: ...
    async def last_ev(self, room_id: str) -> int: ...

    async def edit(self, room_id: str, seq: int, text: str, event: RoomEvent) -> bool:
        """Replace the text of a message not deleted; False (nothing written) otherwise."""

    async def delete_for_all(
        self,
        room_id: str,
        seq: int,
        event: RoomEvent,
        scrub_reply: ScrubReply,
        erased: EraseEdit,
    ) -> list[tuple[int, str]]:
        """Tombstone ``seq`` and erase its copies; returns (seq, new meta) of scrubbed replies."""

    async def react(
        self, room_id: str, seq: int, user_id: str, emoji: str, off: bool, event: RoomEvent
    ) -> bool:
        """Add (or remove) one reaction; False and nothing written when it was already so."""

    async def set_receipt(
        self, room_id: str, user_id: str, read_seq: int, delivered_seq: int, event: RoomEvent
    ) -> None: ...

    async def hide(self, room_id: str, user_id: str, seq: int) -> None: ...
    async def events_after(self, room_id: str, after_ev: int, limit: int) -> list[RoomEvent]: ...
    async def reactions(
        self, room_id: str, seqs: Sequence[int], user_id: str
    ) -> dict[int, list[ReactionCount]]: ...
    async def hidden(self, room_id: str, user_id: str, seqs: Sequence[int]) -> set[int]: ...
    async def unread(self, room_id: str, user_id: str, read_seq: int) -> int:
        """Messages after ``read_seq`` from others, not deleted."""

    async def search(
        self, user_id: str, terms: Sequence[str], room_id: str | None, limit: int, offset: int
    ) -> list[StoredMessage]:
        """Best match first; only rooms ``user_id`` is in; never deleted or hidden ones."""


def rich_store(store: Store) -> RichMessageStore:
    if store.backend == "sqlite":
        from .messages_rich_sqlite import SqliteRichMessageStore

        return SqliteRichMessageStore(store)  # type: ignore[arg-type]
    from .messages_rich_postgres import PostgresRichMessageStore

    return PostgresRichMessageStore(store)  # type: ignore[arg-type]
