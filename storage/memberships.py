"""Who belongs to which room, as the bus subscriptions of a node need it (issue 13)."""

from __future__ import annotations

from collections.abc import Sequence

from storage.sql.database import Database

from .base import Store


class Memberships:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def rooms_of(self, user_id: str) -> set[str]:
        rows = await self._db.fetch(
            "SELECT room_id FROM room_members WHERE user_id = ?", (user_id,)
        )
        return {r[0] for r in rows}

    async def members_among(self, room_id: str, user_ids: Sequence[str]) -> set[str]:
        """Those of ``user_ids`` that belong to ``room_id`` (one query)."""
        if not user_ids:
            return set()
        d = self._db.dialect
        rows = await self._db.fetch(
            f"SELECT user_id FROM room_members WHERE room_id = ? AND {d.in_list('user_id')}",
            (room_id, d.array(user_ids)),
        )
        return {r[0] for r in rows}


def memberships(store: Store) -> Memberships:
    return Memberships(store.db)
