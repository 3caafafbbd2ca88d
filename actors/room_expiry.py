"""The expiry sweeper of disappearing messages.

Rules (issue 18, item 4):
- One sweeper per node, a task in the node's service nursery. Before it
  reports started (so before the node serves) it sweeps everything already
  expired (messages that expired while the node was down), then sleeps until
  the earliest ``expires_at`` still pending, as storage knows it, and sweeps
  again.
- Erasing is the room actor's job (``ExpireData`` through ``change_as``): the
  same delete-for-everyone path, one writer per room, an ``ev`` per message.
- A room that stores a message expiring earlier than the sweeper's wake-up
  time tells it (``scheduled``), which cuts the sleep short so it re-reads.
- Time comes from the node's ``realtime_server.base.clock.Clock``: ``WallClock``
  in production, ``ManualClock`` when a test (or an operator's dry run) moves
  time by hand, so a 24-hour rule is tested without waiting 24 hours.
- A failed sweep (storage down, a room busy) is logged and retried after
  ``retry_seconds``; the sweeper itself never dies of it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

import trio

from actors.errors import ActorError
from actors.room_changes import ExpireData, change_as
from actors.runtime import ActorSystem
from realtime_server.base.clock import Clock
from storage.base import Store
from storage.errors import StoreError
from storage.room_pins import PinStore, pins_store

log = logging.getLogger(__name__)

SYSTEM_SENDER = "system"
_PER_ASK = 50  # messages erased per ask to a room


class DeadlineSweeper(ABC):
    """A task that sweeps what is due, then sleeps until the next deadline
    storage knows of (or until ``scheduled`` names an earlier one). Storage
    failing is retried every ``retry_seconds``; a node starts even with
    storage away. Subclasses say what to sweep and when the next one is due."""

    clock: Clock
    _retry: float
    _label = "sweep"
    _failures: tuple[type[Exception], ...] = (StoreError,)

    def __init__(self) -> None:
        self._wait: trio.CancelScope | None = None
        self._wake_at: int | None = None

    @abstractmethod
    async def sweep(self) -> int:
        """Sweep what is due now; how many were swept."""

    @abstractmethod
    async def next_expiry(self) -> int | None:
        """When the next one is due (ms on the clock), or None for nothing."""

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starting = True
        while True:
            try:
                await self.sweep()
                wake_at = await self.next_expiry()
            except self._failures as exc:
                log.warning("%s failed, retrying in %gs: %r", self._label, self._retry, exc)
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
        """Something due at ``at_ms`` was stored: wake up earlier if need be."""
        if self._wait is not None and (self._wake_at is None or at_ms < self._wake_at):
            self._wait.cancel()
            self._wait = None


class ExpirySweeper(DeadlineSweeper):
    _label = "expiry sweep"
    _failures = (StoreError, ActorError)

    def __init__(
        self,
        store: Store,
        system: ActorSystem,
        clock: Clock,
        *,
        batch: int = 500,
        retry_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        self._pins: PinStore = pins_store(store)
        self._system = system
        self.clock = clock
        self._batch = batch
        self._retry = retry_seconds
        self.swept = 0  # messages erased since start

    async def next_expiry(self) -> int | None:
        return await self._pins.next_expiry()

    async def sweep(self) -> int:
        """Erase every message expired by now; how many were."""
        now = self.clock.now_ms()
        total = 0
        last: list[tuple[str, int]] = []
        while True:
            due = await self._pins.expired(now, self._batch)
            if due == last:
                break  # nothing of the last batch could be erased: retry next round
            by_room: dict[str, list[int]] = {}
            for room_id, seq in due:
                by_room.setdefault(room_id, []).append(seq)
            for room_id, seqs in by_room.items():
                await self._expire(room_id, seqs, now)
            total += len(due)
            if len(due) < self._batch:
                break
            last = due
        if total:
            log.info("erased %d expired messages", total)
        self.swept += total
        return total

    async def _expire(self, room_id: str, seqs: Sequence[int], now: int) -> None:
        # In slices: each erase is a transaction, and one ask must end in time.
        for i in range(0, len(seqs), _PER_ASK):
            part = tuple(seqs[i : i + _PER_ASK])
            await change_as(self._system, room_id, SYSTEM_SENDER, ExpireData(part, now))
