"""Presence settings and last-seen times, and who may be told about a user.

Read only on presence *transitions* (a user's first device connects, the last
one leaves after the grace period) and on explicit queries, never per typing
event or per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .base import Store

VISIBILITIES = ("everyone", "contacts", "nobody")


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    user_id: str
    visibility: str = "everyone"
    last_seen: int | None = None  # ms since epoch; None: never seen offline


class PresenceStore(Protocol):
    async def presence_settings(self, user_ids: Sequence[str]) -> dict[str, PresenceSettings]:
        """Settings of each user id (defaults for users without a row)."""

    async def set_visibility(self, user_id: str, visibility: str) -> None: ...
    async def set_last_seen(self, user_id: str, at: int) -> None: ...

    async def room_peers(self, user_id: str) -> set[str]:
        """Everyone who shares at least one room with ``user_id`` (not the user)."""

    async def member_rooms(self, user_id: str, room_ids: Sequence[str]) -> set[str]:
        """Those of ``room_ids`` that ``user_id`` is a member of: one batched
        query, so a hello naming many rooms costs one lookup, not one per room."""


def presence_store(store: Store) -> PresenceStore:
    if store.backend == "sqlite":
        from .presence_sqlite import SqlitePresenceStore

        return SqlitePresenceStore(store)  # type: ignore[arg-type]
    from .presence_postgres import PostgresPresenceStore

    return PostgresPresenceStore(store)  # type: ignore[arg-type]
