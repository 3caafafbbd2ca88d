"""``MediaStore`` on SQLite, through the main store's connections."""

from __future__ import annotations

import sqlite3

from .media import MEDIA_COLUMNS, MediaInfo
from .sqlite import SqliteStore

_VISIBLE = f"""
SELECT {MEDIA_COLUMNS} FROM media m
WHERE m.id = ? AND (
    m.owner_id = ?
    OR EXISTS (SELECT 1 FROM media_rooms mr
               JOIN room_members rm ON rm.room_id = mr.room_id
               WHERE mr.media_id = m.id AND rm.user_id = ?)
)
"""


class SqliteMediaStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def add_media(self, info: MediaInfo) -> None:
        row = (
            info.id, info.owner_id, info.content_type, info.size, info.filename,
            info.blob_key, info.thumb_key, info.width, info.height, info.created_at,
        )  # fmt: skip
        await self._store._write(
            lambda c: c.execute(
                f"INSERT INTO media ({MEDIA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row
            )
        )

    async def get_media(self, media_id: str) -> MediaInfo | None:
        def run(c: sqlite3.Connection) -> MediaInfo | None:
            row = c.execute(f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = ?", (media_id,))
            found = row.fetchone()
            return None if found is None else MediaInfo(*found)

        return await self._store._read(run)

    async def attach_media(self, media_id: str, room_id: str) -> None:
        await self._store._write(
            lambda c: c.execute(
                "INSERT INTO media_rooms (media_id, room_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (media_id, room_id),
            )
        )

    async def media_visible_to(self, media_id: str, user_id: str) -> MediaInfo | None:
        def run(c: sqlite3.Connection) -> MediaInfo | None:
            found = c.execute(_VISIBLE, (media_id, user_id, user_id)).fetchone()
            return None if found is None else MediaInfo(*found)

        return await self._store._read(run)
