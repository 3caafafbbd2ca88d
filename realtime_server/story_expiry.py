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

import logging
from collections.abc import Iterable

import trio

from actors.room_expiry import Clock
from storage.base import Store
from storage.blobs import BlobNotFound, BlobStore
from storage.errors import StoreError
from storage.stories import story_store

log = logging.getLogger(__name__)


async def delete_blobs(blobs: BlobStore, keys: Iterable[str]) -> None:
    for key in keys:
        try:
            await blobs.delete(key)
        except (BlobNotFound, OSError) as exc:  # already gone, or the disk: only space lost
            log.warning("story blob %s not deleted: %r", key, exc)


class StorySweeper:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        clock: Clock,
        *,
        batch: int = 500,
        retry_seconds: float = 5.0,
    ) -> None:
        self._stories = story_store(store)
        self._blobs = blobs
        self.clock = clock
        self._batch = batch
        self._retry = retry_seconds
        self._wait: trio.CancelScope | None = None
        self._wake_at: int | None = None
        self.swept = 0  # blobs deleted since start

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starting = True
        while True:
            try:
                await self.sweep()
                wake_at = await self._stories.next_expiry()
            except StoreError as exc:
                log.warning("story sweep failed, retrying in %gs: %r", self._retry, exc)
                if starting:
                    starting = False
                    task_status.started()  # a node starts even with storage away
                await trio.sleep(self._retry)
                continue
            if starting:
                starting = False
                task_status.started()
            with trio.CancelScope() as scope:
                self._wait, self._wake_at = scope, wake_at
                if wake_at is None:
                    await trio.sleep_forever()
                else:
                    await self.clock.sleep_until(wake_at)
            self._wait = None

    def scheduled(self, at_ms: int) -> None:
        """A story may expire at ``at_ms``: wake up earlier if need be."""
        if self._wait is not None and (self._wake_at is None or at_ms < self._wake_at):
            self._wait.cancel()
            self._wait = None

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
