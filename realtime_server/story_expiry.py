"""Expired stories leave storage and the blob store (issue 15, part 1).

Reads already hide a story once its day is over (``storage.stories`` takes
``now`` from the node's clock), so this sweeper is only housekeeping: it
deletes the rows of expired stories that no highlight keeps, and the blobs
of their uploads that nothing else uses (never sent in a room, no other
story). It sleeps on the node's one clock until the next expiry, so a test
moving a ``ManualClock`` sees it run at once.

- Rows first, blobs second: a row never points at a missing blob for long,
  and a blob left by a crash in between is only wasted space.
- ``scheduled`` wakes it for an earlier expiry (a story posted while
  nothing was due, a highlight deleted).
- A storage failure is logged and retried after ``retry_seconds``.
"""

from __future__ import annotations

from actors.room_expiry import DeadlineSweeper
from realtime_server.base.clock import Clock
from storage.base import Store
from storage.blobs import BlobStore, delete_blobs
from storage.stories import story_store


class StorySweeper(DeadlineSweeper):
    _label = "story sweep"

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        clock: Clock,
        *,
        batch: int = 500,
        retry_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        self._stories = story_store(store)
        self._blobs = blobs
        self.clock = clock
        self._batch = batch
        self._retry = retry_seconds
        self.swept = 0  # blobs deleted since start

    async def next_expiry(self) -> int | None:
        return await self._stories.next_expiry()

    async def sweep(self) -> int:
        """Forget every story expired by now; how many blobs were deleted."""
        now = self.clock.now_ms()
        deleted = 0
        while True:
            keys = await self._stories.forget_expired(now, self._batch)
            await delete_blobs(self._blobs, keys)
            deleted += len(keys)
            # A full batch may leave more behind; an empty one found none.
            if not await self._stories.has_expired(now):
                break
        self.swept += deleted
        return deleted
