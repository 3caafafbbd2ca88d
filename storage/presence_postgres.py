"""``PresenceStore`` on PostgreSQL, through the main store's pool."""

from __future__ import annotations

from collections.abc import Sequence

from .postgres import PostgresStore
from .presence import PresenceSettings

_PEERS = """
SELECT DISTINCT other.user_id FROM room_members me
JOIN room_members other ON other.room_id = me.room_id
WHERE me.user_id = $1 AND other.user_id <> $1
"""


class PostgresPresenceStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool = store._pool

    async def presence_settings(self, user_ids: Sequence[str]) -> dict[str, PresenceSettings]:
        ids = list(dict.fromkeys(user_ids))
        rows = await self._store._run(
            self._pool.fetch,
            "SELECT user_id, visibility, last_seen FROM user_presence"
            " WHERE user_id = ANY($1::text[])",
            ids,
        )
        found = {u: PresenceSettings(u) for u in ids}
        for row in rows:
            found[row[0]] = PresenceSettings(*row)
        return found

    async def set_visibility(self, user_id: str, visibility: str) -> None:
        await self._store._run(
            self._pool.execute,
            "INSERT INTO user_presence (user_id, visibility) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE SET visibility = excluded.visibility",
            user_id,
            visibility,
        )

    async def set_last_seen(self, user_id: str, at: int) -> None:
        await self._store._run(
            self._pool.execute,
            "INSERT INTO user_presence (user_id, last_seen) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
            user_id,
            at,
        )

    async def room_peers(self, user_id: str) -> set[str]:
        rows = await self._store._run(self._pool.fetch, _PEERS, user_id)
        return {r[0] for r in rows}

    async def member_rooms(self, user_id: str, room_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(room_ids))
        if not ids:
            return set()
        rows = await self._store._run(
            self._pool.fetch,
            "SELECT room_id FROM room_members WHERE user_id = $1 AND room_id = ANY($2::text[])",
            user_id,
            ids,
        )
        return {r[0] for r in rows}
