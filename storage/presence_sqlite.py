"""``PresenceStore`` on SQLite, through the main store's connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .presence import PresenceSettings
from .schema import chunks
from .sqlite import SqliteStore

_PEERS = """
SELECT DISTINCT other.user_id FROM room_members me
JOIN room_members other ON other.room_id = me.room_id
WHERE me.user_id = ? AND other.user_id <> ?
"""


class SqlitePresenceStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def presence_settings(self, user_ids: Sequence[str]) -> dict[str, PresenceSettings]:
        ids = list(dict.fromkeys(user_ids))

        def run(c: sqlite3.Connection) -> dict[str, PresenceSettings]:
            found = {u: PresenceSettings(u) for u in ids}
            for part in chunks(ids, 500):
                marks = ", ".join("?" * len(part))
                for row in c.execute(
                    "SELECT user_id, visibility, last_seen FROM user_presence"
                    f" WHERE user_id IN ({marks})",
                    part,
                ):
                    found[row[0]] = PresenceSettings(*row)
            return found

        return await self._store._read(run)

    async def set_visibility(self, user_id: str, visibility: str) -> None:
        await self._store._write(
            lambda c: c.execute(
                "INSERT INTO user_presence (user_id, visibility) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET visibility = excluded.visibility",
                (user_id, visibility),
            )
        )

    async def set_last_seen(self, user_id: str, at: int) -> None:
        await self._store._write(
            lambda c: c.execute(
                "INSERT INTO user_presence (user_id, last_seen) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
                (user_id, at),
            )
        )

    async def room_peers(self, user_id: str) -> set[str]:
        rows = await self._store._read(lambda c: c.execute(_PEERS, (user_id, user_id)).fetchall())
        return {r[0] for r in rows}

    async def member_rooms(self, user_id: str, room_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(room_ids))
        if not ids:
            return set()

        def run(c: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for part in chunks(ids, 500):
                marks = ", ".join("?" * len(part))
                found.update(
                    r[0]
                    for r in c.execute(
                        "SELECT room_id FROM room_members"
                        f" WHERE user_id = ? AND room_id IN ({marks})",
                        [user_id, *part],
                    )
                )
            return found

        return await self._store._read(run)
