"""The node's one clock for wall-time rules (issue 14, item 4).

A wall-time rule is one whose time is milliseconds since the Unix epoch,
usually stored: OTP back-off and expiry, rate-limit windows, the delete and
edit window, story and message expiry, AI quotas and plan periods, last seen,
token ``iat``/``exp``, TURN credentials. Every such rule reads ``now_ms()`` of
the clock ``open_node`` was given, never ``time.time()``, so a test moves a
``ManualClock`` instead of sleeping. (Rules measured in trio time, such as
typing expiry, presence grace and heartbeats, already run on trio's clock,
which tests replace with ``MockClock``.)

Depends on the standard library and trio only: every package may import it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import trio


def wall_ms() -> int:
    """The real time, in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, as this clock tells it."""

    async def sleep_until(self, at_ms: int) -> None:
        """Return once ``now_ms() >= at_ms``."""


class WallClock:
    """Real time: the clock of a production node."""

    def now_ms(self) -> int:
        return wall_ms()

    async def sleep_until(self, at_ms: int) -> None:
        # Once more if woken early (the wall clock may lag trio's a little).
        for _ in range(2):
            left = at_ms - wall_ms()
            if left <= 0:
                return
            await trio.sleep(left / 1000)


class ManualClock:
    """Time that moves only through ``advance`` (starts at the wall time when made)."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = wall_ms() if start_ms is None else start_ms
        self._moved = trio.Event()

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a clock does not go back")
        self._now += ms
        self._moved.set()
        self._moved = trio.Event()

    async def sleep_until(self, at_ms: int) -> None:
        while self._now < at_ms:
            await self._moved.wait()


def seconds_of(clock: Clock) -> Callable[[], float]:
    """The clock as a ``time.time``-like callable (seconds since the epoch), for
    the services whose rules count in seconds (tokens, OTP, rate limits)."""
    return lambda: clock.now_ms() / 1000
