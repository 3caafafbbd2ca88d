"""Velocity limits with growing back-off, for codes, discovery and search.

Every limit is a counter in storage (``storage.challenges``), so all nodes
share it. One request checks several counters at once (per target, per IP,
per country prefix) and they move together or not at all: a refused request
sends nothing and changes nothing, and its answer is 429 ``rate_limited``
with ``Retry-After``, the seconds until every counter would admit it.

The rules, per ``OTP_WINDOW`` seconds:

============================  =======================  ==========================
what                          limit                    back-off
============================  =======================  ==========================
codes sent to one target      OTP_SENDS_PER_TARGET     OTP_RESEND_BACKOFF after
                                                       each, doubling
codes sent from one IP        OTP_SENDS_PER_IP         -
codes sent to one country     OTP_SENDS_PER_COUNTRY    -
code tries for one target     OTP_VERIFIES_PER_TARGET  two free, then
                                                       OTP_VERIFY_BACKOFF doubling
code tries from one IP        OTP_VERIFIES_PER_IP      -
============================  =======================  ==========================

A right code clears its target's try counter (a typo earlier must not slow
the next sign-in). Discovery counts phone hashes per user per day; search
counts requests per user per minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bridge.errors import RateLimited
from realtime_server.settings import Settings
from storage.base import Store
from storage.challenges import LimitRule, challenges_store

DAY_MS = 24 * 3600 * 1000
MINUTE_MS = 60 * 1000
PURGE_EVERY_MS = 10 * MINUTE_MS


class Limits:
    def __init__(
        self, store: Store, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._challenges = challenges_store(store)
        self._s = settings
        self._clock = clock
        self._window = settings.otp_window * 1000
        self._last_purge = 0

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def admit(self, hits: dict[str, LimitRule], message: str | None = None) -> None:
        """Count the hits, or raise ``RateLimited`` having counted none of them."""
        now = self.now_ms()
        if now - self._last_purge > PURGE_EVERY_MS:
            self._last_purge = now
            await self._challenges.purge_expired(now)
        wait_ms = await self._challenges.hit(hits, now)
        if wait_ms:
            raise RateLimited(wait_ms / 1000, message)

    async def before_send(self, target: str, ip: str, country: int | None = None) -> None:
        s = self._s
        hits = {
            f"otp-send:target:{target}": LimitRule(
                s.otp_sends_per_target, self._window, int(s.otp_resend_backoff * 1000)
            ),
            f"otp-send:ip:{ip}": LimitRule(s.otp_sends_per_ip, self._window),
        }
        if country is not None:
            hits[f"otp-send:country:+{country}"] = LimitRule(s.otp_sends_per_country, self._window)
        await self.admit(hits, "Too many codes asked for; wait before asking again.")

    async def before_verify(self, target: str, ip: str) -> None:
        s = self._s
        hits = {
            # Two tries go through at once, as README says; the second closes the
            # door for OTP_VERIFY_BACKOFF (``free`` counts the hits that close
            # nothing: with 2 here a third try went through too, issue 12).
            f"otp-verify:target:{target}": LimitRule(
                s.otp_verifies_per_target, self._window, int(s.otp_verify_backoff * 1000), free=1
            ),
            f"otp-verify:ip:{ip}": LimitRule(s.otp_verifies_per_ip, self._window),
        }
        await self.admit(hits, "Too many code tries; wait before trying again.")

    async def verified(self, target: str) -> None:
        await self._challenges.clear_counters([f"otp-verify:target:{target}"])

    async def before_discover(self, user_id: str, hashes: int) -> None:
        rule = LimitRule(self._s.discover_per_day, DAY_MS, cost=max(hashes, 1))
        await self.admit(
            {f"discover:user:{user_id}": rule},
            "Too many phone numbers checked today; the rest can be checked tomorrow.",
        )

    async def before_search(self, user_id: str) -> None:
        rule = LimitRule(self._s.user_search_per_minute, MINUTE_MS)
        await self.admit({f"search:user:{user_id}": rule}, "Too many searches; slow down.")
