"""Media records: who uploaded what, and which rooms may read it.

The bytes themselves live in a blob store (``storage.blobs``); these rows are
what access checks read. An upload is private to its uploader until it is
*attached* to a room (sent in it, or made a group's avatar); from then on the
members of any room it is attached to may read it too.

``media_store(store)`` gives the store; ``media_visible_to`` and
``attach_media`` are the two calls other features use (the room actor checks
a media message with the first and records it with the second).
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.sql.database import Database
from storage.sql.dialect import register_unique

from .base import Store


@dataclass(frozen=True, slots=True)
class MediaInfo:
    id: str
    owner_id: str
    content_type: str  # sniffed from the bytes, never taken from the client
    size: int
    filename: str  # as the client named it; display only
    blob_key: str
    thumb_key: str | None
    width: int | None
    height: int | None
    created_at: int

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


MEDIA_COLUMNS = (
    "id, owner_id, content_type, size, filename, blob_key, thumb_key, width, height, created_at"
)

register_unique(sqlite={"media.id": "id"}, postgres={"media_pkey": "id"})

_VISIBLE = f"""
SELECT {MEDIA_COLUMNS} FROM media m
WHERE m.id = ? AND (
    m.owner_id = ?
    OR EXISTS (SELECT 1 FROM media_rooms mr
               JOIN room_members rm ON rm.room_id = mr.room_id
               WHERE mr.media_id = m.id AND rm.user_id = ?)
)
"""


class MediaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_media(self, info: MediaInfo) -> None:
        await self._db.execute(
            f"INSERT INTO media ({MEDIA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                info.id, info.owner_id, info.content_type, info.size, info.filename,
                info.blob_key, info.thumb_key, info.width, info.height, info.created_at,
            ),
        )  # fmt: skip

    async def get_media(self, media_id: str) -> MediaInfo | None:
        row = await self._db.fetchone(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = ?", (media_id,)
        )
        return None if row is None else MediaInfo(*row)

    async def attach_media(self, media_id: str, room_id: str) -> None:
        """Let the members of ``room_id`` read the upload; idempotent."""
        await self._db.execute(
            "INSERT INTO media_rooms (media_id, room_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (media_id, room_id),
        )

    async def media_visible_to(self, media_id: str, user_id: str) -> MediaInfo | None:
        """The upload if ``user_id`` uploaded it or shares a room it is attached to."""
        row = await self._db.fetchone(_VISIBLE, (media_id, user_id, user_id))
        return None if row is None else MediaInfo(*row)


def media_store(store: Store) -> MediaStore:
    return MediaStore(store.db)


async def media_visible_to(store: Store, media_id: str, user_id: str) -> MediaInfo | None:
    """The upload ``media_id`` if ``user_id`` may read it, else None (also when absent)."""
    return await media_store(store).media_visible_to(media_id, user_id)


async def attach_media(store: Store, media_id: str, room_id: str) -> None:
    """Make ``media_id`` readable by the members of ``room_id`` (call when it is sent there)."""
    await media_store(store).attach_media(media_id, room_id)
