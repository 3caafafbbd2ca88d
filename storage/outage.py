"""``StorageHealth``: whether storage is failing, logged once per change of state.

A storage outage is an expected condition, not a bug: every request that
needs storage answers ``unavailable`` (retryable) while it lasts, and the log
gets ONE line when it begins and ONE when it ends, however many requests
failed in between (issue 12, item 20: thousands of tracebacks a minute made
the real problem hard to see).

Rules:
- ``failed(exc)`` and ``succeeded()`` are synchronous and cheap: callers on
  the hot path (the writer, room actors) report every outcome.
- ``health_of(store)`` gives the one tracker of a store object, so every
  part of a node that uses the same store shares one state (and one log
  line) without extra wiring; two nodes in one process (tests) keep theirs
  apart.
- Only ``StoreError`` that is about the database itself counts;
  ``Conflict``/``NotFound`` are answers about data, not outages.
- asyncpg's pool logs a traceback each time it fails to reconnect its minimum
  connections (backing off from 1 s to 60 s). During an outage that is noise
  beside our one line: the line stays, its traceback goes.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

import trio

from .errors import Conflict, NotFound, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthStatistics:
    down: bool
    outages: int  # times storage went from working to failing
    failures: int  # failed operations reported, over the process's life


class StorageHealth:
    def __init__(self) -> None:
        self._down_since: float | None = None
        self._failures_now = 0
        self._outages = 0
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def statistics(self) -> HealthStatistics:
        return HealthStatistics(self.down, self._outages, self._failures)

    def failed(self, exc: BaseException) -> None:
        """Report a failed storage operation; logs only when an outage begins."""
        if not is_outage(exc):
            return
        self._failures += 1
        self._failures_now += 1
        if self._down_since is None:
            self._down_since = _now()
            self._outages += 1
            log.warning("storage unavailable, answering 'unavailable' until it is back: %s", exc)

    def succeeded(self) -> None:
        """Report a storage operation that worked; logs only when an outage ends."""
        if self._down_since is None:
            return
        lasted = _now() - self._down_since
        log.warning(
            "storage available again after %.1f s (%d operations failed meanwhile)",
            lasted,
            self._failures_now,
        )
        self._down_since = None
        self._failures_now = 0


def is_outage(exc: BaseException) -> bool:
    """A failure of storage itself (not a refusal about the data, like a conflict)."""
    return isinstance(exc, StoreError) and not isinstance(exc, Conflict | NotFound)


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # outside a trio run (a synchronous tool)
        return 0.0


class _QuietPoolReconnects(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Failed to restore the pool"):
            error = record.exc_info[1]
            record.msg = f"{record.msg} ({error!r})"
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_QuietPoolReconnects())


_trackers: weakref.WeakKeyDictionary[object, StorageHealth] = weakref.WeakKeyDictionary()


def health_of(store: object) -> StorageHealth:
    """The health tracker of ``store`` (created on first use)."""
    try:
        tracker = _trackers.get(store)
        if tracker is None:
            tracker = _trackers[store] = StorageHealth()
    except TypeError:  # not weakly referable: share one tracker rather than fail
        return _shared
    return tracker


_shared = StorageHealth()
