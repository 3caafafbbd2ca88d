"""Old notifications leave storage: a sweeper per node (issue 13's review).

Rules:
- A read notification is kept ``NOTIFICATIONS_RETENTION_DAYS`` after it was
  created, then deleted; an unread one is kept until read (the user has not
  seen it), except that a user keeps at most ``NOTIFICATIONS_MAX_PER_USER``
  rows, newest first: beyond that the oldest go, read or not, so one user
  (or a flood of announcements) cannot grow the table without bound.
- It sleeps on the node's one clock until the oldest read notification is
  due, and at least every ``check_seconds`` (for the cap and for rows read
  since), so a test moving a ``ManualClock`` sees it run at once.
- Deletes go in batches, each a short transaction of its own. On several
  nodes every node sweeps: the deletes are idempotent, and whichever runs
  first does the work.
- A storage failure is logged and retried after ``retry_seconds``.
"""

from __future__ import annotations

import logging

from actors.room_expiry import DeadlineSweeper
from realtime_server.base.clock import Clock
from storage.base import Store
from storage.notifications import notification_store

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


class NotificationSweeper(DeadlineSweeper):
    _label = "notification prune"

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        retention_days: int,
        max_per_user: int,
        check_seconds: float = 3600.0,
        batch: int = 1000,
        retry_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        self._notes = notification_store(store)
        self.clock = clock
        self._retention_ms = retention_days * DAY_MS
        self._max_per_user = max_per_user
        self._check_ms = int(check_seconds * 1000)
        self._batch = batch
        self._retry = retry_seconds
        self.pruned = 0  # rows deleted since start

    async def next_expiry(self) -> int | None:
        check = self.clock.now_ms() + self._check_ms
        oldest = await self._notes.oldest_read()
        return check if oldest is None else min(check, oldest + self._retention_ms)

    async def sweep(self) -> int:
        """Delete what is past retention or beyond a user's cap; how many rows went."""
        cutoff = self.clock.now_ms() - self._retention_ms
        total = 0
        while (n := await self._notes.prune_read(cutoff, self._batch)) > 0:
            total += n
            if n < self._batch:
                break
        while (n := await self._notes.cap_per_user(self._max_per_user, self._batch)) > 0:
            total += n
            if n < self._batch:
                break
        if total:
            log.info("pruned %d old notifications", total)
        self.pruned += total
        return total
