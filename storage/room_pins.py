"""Storage of pinned messages and the disappearing-messages timer (issue 18).

``pins_store(store)`` picks the backend twin (``room_pins_sqlite`` /
``room_pins_postgres``), which runs on the main store's connections.

Rules:
- Like every change (``storage.messages_rich``), a pin, an unpin or a new
  timer is written in ONE transaction with its ``room_events`` row.
- Delete-for-everyone drops the message's pin in its own transaction
  (``messages_rich`` twins), so a pin never outlives its message.
- ``expired`` and ``next_expiry`` see only messages not deleted yet: a swept
  message leaves the sweeper's view in the transaction that erases it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .base import Store
from .messages_rich import RoomEvent


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


class PinStore(Protocol):
    async def load(self, room_id: str) -> RoomPins: ...

    async def pin(self, room_id: str, pin: Pin, event: RoomEvent) -> None: ...

    async def unpin(self, room_id: str, seq: int, event: RoomEvent) -> None: ...

    async def set_disappearing(self, room_id: str, ms: int, event: RoomEvent) -> None: ...

    async def expired(self, now: int, limit: int) -> list[tuple[str, int]]:
        """(room_id, seq) of messages not deleted whose ``expires_at`` <= ``now``, oldest first."""

    async def next_expiry(self) -> int | None:
        """The earliest ``expires_at`` of a message not deleted yet, or None."""


def pins_store(store: Store) -> PinStore:
    if store.backend == "sqlite":
        from .room_pins_sqlite import SqlitePinStore

        return SqlitePinStore(store)  # type: ignore[arg-type]
    from .room_pins_postgres import PostgresPinStore

    return PostgresPinStore(store)  # type: ignore[arg-type]
