"""Presence settings and last-seen times, and who may be told about a user.

Read only on presence *transitions* (a user's first device connects, the last
one leaves after the grace period) and on explicit queries, never per typing
event or per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.sql.database import Database

from .base import Store

VISIBILITIES = ("everyone", "contacts", "nobody")


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    user_id: str
    visibility: str = "everyone"
    last_seen: int | None = None  # ms since epoch; None: never seen offline


_PEERS = """
SELECT DISTINCT other.user_id FROM room_members me
JOIN room_members other ON other.room_id = me.room_id
WHERE me.user_id = ? AND other.user_id <> ?
"""


class PresenceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def presence_settings(self, user_ids: Sequence[str]) -> dict[str, PresenceSettings]:
        """Settings of each user id (defaults for users without a row)."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}
        d = self._db.dialect
        rows = await self._db.fetch(
            "SELECT user_id, visibility, last_seen FROM user_presence"
            f" WHERE {d.in_list('user_id')}",
            (d.array(ids),),
        )
        found = {u: PresenceSettings(u) for u in ids}
        for row in rows:
            found[row[0]] = PresenceSettings(*row)
        return found

    async def set_visibility(self, user_id: str, visibility: str) -> None:
        await self._db.execute(
            "INSERT INTO user_presence (user_id, visibility) VALUES (?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET visibility = excluded.visibility",
            (user_id, visibility),
        )

    async def set_last_seen(self, user_id: str, at: int) -> None:
        await self._db.execute(
            "INSERT INTO user_presence (user_id, last_seen) VALUES (?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
            (user_id, at),
        )

    async def room_peers(self, user_id: str) -> set[str]:
        """Everyone who shares at least one room with ``user_id`` (not the user)."""
        rows = await self._db.fetch(_PEERS, (user_id, user_id))
        return {r[0] for r in rows}

    async def member_rooms(self, user_id: str, room_ids: Sequence[str]) -> set[str]:
        """Those of ``room_ids`` that ``user_id`` is a member of: one batched
        query, so a hello naming many rooms costs one lookup, not one per room."""
        ids = list(dict.fromkeys(room_ids))
        if not ids:
            return set()
        d = self._db.dialect
        rows = await self._db.fetch(
            f"SELECT room_id FROM room_members WHERE user_id = ? AND {d.in_list('room_id')}",
            (user_id, d.array(ids)),
        )
        return {r[0] for r in rows}


def presence_store(store: Store) -> PresenceStore:
    return PresenceStore(store.db)
