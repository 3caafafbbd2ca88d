"""``MediaStore`` on PostgreSQL, through the main store's pool."""

from __future__ import annotations

from .media import MEDIA_COLUMNS, MediaInfo
from .postgres import PostgresStore

_VISIBLE = f"""
SELECT {MEDIA_COLUMNS} FROM media m
WHERE m.id = $1 AND (
    m.owner_id = $2
    OR EXISTS (SELECT 1 FROM media_rooms mr
               JOIN room_members rm ON rm.room_id = mr.room_id
               WHERE mr.media_id = m.id AND rm.user_id = $2)
)
"""


class PostgresMediaStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool = store._pool

    async def add_media(self, info: MediaInfo) -> None:
        await self._store._run(
            self._pool.execute,
            f"INSERT INTO media ({MEDIA_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            info.id, info.owner_id, info.content_type, info.size, info.filename,
            info.blob_key, info.thumb_key, info.width, info.height, info.created_at,
        )  # fmt: skip

    async def get_media(self, media_id: str) -> MediaInfo | None:
        row = await self._store._run(
            self._pool.fetchrow, f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = $1", media_id
        )
        return None if row is None else MediaInfo(*row)

    async def attach_media(self, media_id: str, room_id: str) -> None:
        await self._store._run(
            self._pool.execute,
            "INSERT INTO media_rooms (media_id, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            media_id,
            room_id,
        )

    async def media_visible_to(self, media_id: str, user_id: str) -> MediaInfo | None:
        row = await self._store._run(self._pool.fetchrow, _VISIBLE, media_id, user_id)
        return None if row is None else MediaInfo(*row)
