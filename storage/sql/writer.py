"""``MessageWriter``: group commit for the message hot path.

Room actors hand over batches with ``submit_nowait``; one task writes
everything that queued up while the previous write was running in ONE
``store.insert_messages`` call (one transaction, one fsync / round trip), so
throughput grows with load instead of paying a commit per message.

Rules:
- ``submit_nowait`` never blocks and never raises: its queue is unbounded,
  which is safe because each room actor keeps at most one batch in flight,
  so the queue is bounded by the number of live rooms.
- Every job's ``on_done`` is called exactly once: ``None`` once its rows are
  committed, or the exception that kept them out.
- A failed combined write is retried job by job, so one room's ``Conflict``
  (or ``NotFound``) does not fail the other rooms that happened to share its
  transaction. A single retry failing for another reason means the database
  itself is failing; the remaining jobs then get that error without more
  attempts.
- ``on_done`` is synchronous and runs in the writer task: it must only hand
  the result over (e.g. ``send_nowait`` to the actor's inbox). If it raises,
  the error is logged and the writer carries on.
- When ``serve`` stops (cancellation), every job it had not answered gets
  ``StoreError("writer stopped")``. A job that was mid-write may in fact have
  been committed; a resend with the same cids is idempotent, so callers need
  not tell the two apart.
- ``wait_idle(room_id)`` returns once no job with a row of that room is
  queued or being written (its ``on_done`` has run). A room actor that
  restarts waits for it before reading its last ``seq`` from storage: a batch
  of the previous incarnation may still commit, and reading before that would
  hand the same seq out twice (issue 12, item 9).
- ``pause()``/``resume()`` hold the next round (jobs queue meanwhile). Used to
  make races observable in tests and during maintenance; nothing else pauses.
- Every outcome is reported to the store's ``StorageHealth``, which logs one
  line when an outage begins and one when it ends.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import trio

from realtime_server.base import metrics
from storage.base import Store, StoredMessage
from storage.errors import Conflict, NotFound, StoreError
from storage.outage import health_of

log = logging.getLogger(__name__)

OnDone = Callable[[BaseException | None], None]


# eq=False: jobs are compared by identity when taken off the in-flight list.
@dataclass(frozen=True, slots=True, eq=False)
class _Job:
    messages: Sequence[StoredMessage]
    on_done: OnDone
    rooms: frozenset[str]
    fences: dict[str, int] | None = None  # room -> lease token (several nodes)


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    batches: int  # successful insert_messages calls (combined or retried singly)
    rows: int  # rows committed
    jobs: int  # jobs committed
    failures: int  # jobs answered with an exception
    queued: int  # jobs waiting for the next round


class _State(Enum):
    NEW = "new"  # submissions queue until serve() starts
    RUNNING = "running"
    STOPPED = "stopped"  # submissions fail at once


class MessageWriter:
    def __init__(self, store: Store, *, max_batch: int = 2000) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._store = store
        self._max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Job](math.inf)
        # A job taken from the channel that did not fit the last round.
        self._carry: _Job | None = None
        self._in_flight: list[_Job] = []
        self._state = _State.NEW
        self._batches = 0
        self._rows = 0
        self._jobs = 0
        self._failures = 0
        # Rooms with a job queued or being written, and how many.
        self._busy: dict[str, int] = {}
        self._idle: dict[str, trio.Event] = {}
        self._resumed = trio.Event()
        self._resumed.set()
        self._health = health_of(store)

    def statistics(self) -> WriterStatistics:
        queued = self._send.statistics().current_buffer_used + (self._carry is not None)
        return WriterStatistics(
            batches=self._batches,
            rows=self._rows,
            jobs=self._jobs,
            failures=self._failures,
            queued=queued,
        )

    def submit_nowait(
        self,
        messages: list[StoredMessage],
        on_done: OnDone,
        fence: tuple[str, int] | None = None,
    ) -> None:
        """Queue ``messages`` to be committed together; ``on_done`` reports how it went.

        After the writer has stopped, ``on_done`` is called right here with a
        ``StoreError``, so callers have one way of learning about failure.
        """
        # Copied: the caller may reuse its list once this returns.
        job = _Job(
            list(messages),
            on_done,
            frozenset(m.room_id for m in messages),
            None if fence is None else dict((fence,)),
        )
        if self._state is _State.STOPPED:
            self._finish(job, StoreError("writer stopped"))
            return
        for room in job.rooms:
            self._busy[room] = self._busy.get(room, 0) + 1
        self._send.send_nowait(job)

    async def wait_idle(self, room_id: str) -> None:
        """Return once no job with rows of ``room_id`` is queued or being written."""
        while room_id in self._busy:
            event = self._idle.get(room_id)
            if event is None:
                event = self._idle[room_id] = trio.Event()
            await event.wait()

    def pause(self) -> None:
        """Take no new round until ``resume()``; a write already running finishes."""
        if self._resumed.is_set():
            self._resumed = trio.Event()

    def resume(self) -> None:
        self._resumed.set()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._state is _State.RUNNING:
            raise RuntimeError("MessageWriter.serve is already running")
        self._state = _State.RUNNING
        task_status.started()
        try:
            while True:
                jobs = await self._next_round()
                self._in_flight = list(jobs)
                await self._write(jobs)
                self._in_flight = []
        finally:
            # No awaits from here on: runs under cancellation.
            self._state = _State.STOPPED
            self._fail_pending(StoreError("writer stopped"))

    async def _next_round(self) -> list[_Job]:
        """Wait for one job, then take what is already queued, up to max_batch rows.

        No timer: jobs that arrive while a write is running make up the next
        round, so batches grow exactly as fast as the database falls behind.
        """
        if self._carry is None:
            self._carry = await self._receive.receive()
        # Paused: the job stays the carry (so a stop still answers it).
        await self._resumed.wait()
        first, self._carry = self._carry, None
        jobs = [first]
        rows = len(first.messages)
        while rows < self._max_batch:
            try:
                job = self._receive.receive_nowait()
            except trio.WouldBlock:
                break
            if rows + len(job.messages) > self._max_batch:
                self._carry = job
                break
            jobs.append(job)
            rows += len(job.messages)
        return jobs

    async def _write(self, jobs: list[_Job]) -> None:
        rows = [m for job in jobs for m in job.messages]
        fences = _fences(jobs)
        started = metrics.now()
        try:
            await self._store.insert_messages(rows, fences)
        except Exception as exc:
            self._health.failed(exc)
            if len(jobs) == 1:
                self._finish_in_flight(jobs[0], exc)
                return
            log.debug("combined write of %d jobs failed (%r); retrying singly", len(jobs), exc)
        else:
            metrics.writer_committed(len(rows), started)
            self._committed(rows)
            for job in jobs:
                self._finish_in_flight(job, None)
            return
        await self._write_singly(jobs)

    async def _write_singly(self, jobs: list[_Job]) -> None:
        for i, job in enumerate(jobs):
            try:
                await self._store.insert_messages(job.messages, job.fences)
            except (Conflict, NotFound) as exc:
                self._health.succeeded()  # the database answered
                # This job's own data: the others may well be fine.
                self._finish_in_flight(job, exc)
            except Exception as exc:
                self._health.failed(exc)
                # Not about this job's rows: the database itself is failing
                # (locked, gone, full). Trying each remaining job would only
                # multiply the wait (busy timeouts, connect timeouts) before
                # every room hears the same answer.
                for failed in jobs[i:]:
                    self._finish_in_flight(failed, exc)
                return
            else:
                self._committed(job.messages)
                self._finish_in_flight(job, None)

    def _committed(self, rows: Sequence[StoredMessage]) -> None:
        self._health.succeeded()
        self._batches += 1
        self._rows += len(rows)

    def _finish_in_flight(self, job: _Job, error: BaseException | None) -> None:
        # Removed before the callback runs so a cancellation right after can
        # never answer this job a second time.
        self._in_flight.remove(job)
        self._finish(job, error)

    def _finish(self, job: _Job, error: BaseException | None) -> None:
        if error is None:
            self._jobs += 1
        else:
            self._failures += 1
            if not isinstance(error, Conflict | NotFound):  # the database failed, not the data
                metrics.writer_failed()
            if not isinstance(error, StoreError):
                log.error("message write failed with a non-storage error", exc_info=error)
        try:
            job.on_done(error)
        except Exception:
            log.exception("MessageWriter on_done callback raised; ignored")
        finally:
            self._done_with(job)

    def _done_with(self, job: _Job) -> None:
        for room in job.rooms:
            left = self._busy.get(room, 0) - 1
            if left > 0:
                self._busy[room] = left
                continue
            self._busy.pop(room, None)
            event = self._idle.pop(room, None)
            if event is not None:
                event.set()

    def _fail_pending(self, error: StoreError) -> None:
        pending, self._in_flight = self._in_flight, []
        if self._carry is not None:
            pending.append(self._carry)
            self._carry = None
        while True:
            try:
                pending.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        for job in pending:
            self._finish(job, error)


def _fences(jobs: Sequence[_Job]) -> dict[str, int] | None:
    """Every lease a round's rows are written under, checked in its transaction."""
    fences: dict[str, int] | None = None
    for job in jobs:
        if job.fences:
            fences = fences or {}
            fences.update(job.fences)
    return fences
