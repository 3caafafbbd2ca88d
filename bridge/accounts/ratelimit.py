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

Password sign-in, sign-up and refresh (issue 12) slow the attacker, not the
owner (the Stripe/Auth0 pattern). Each login try counts, before the password
is checked (a refused try costs no argon2), under three keys:

==========================  ========================  =====================  ==================
key                         limit                     window                 back-off
==========================  ========================  =====================  ==================
one login from one address  LOGIN_PER_ACCOUNT_IP      LOGIN_WINDOW           LOGIN_FREE_TRIES
                                                                             free, then
                                                                             LOGIN_BACKOFF
                                                                             doubling
one address, any login      LOGIN_PER_IP              LOGIN_WINDOW           -
one login from anywhere     LOGIN_PER_ACCOUNT         LOGIN_ACCOUNT_WINDOW   -
sign-ups from one address   REGISTER_PER_IP           REGISTER_WINDOW        -
refreshes from one address  REFRESH_PER_IP            REFRESH_WINDOW         -
==========================  ========================  =====================  ==================

A guesser meets the back-off of its own address within a few tries; the
owner, from another address, never shares that counter. The per-login limit
from anywhere is what many addresses together can impose on the owner: it is
loose and short (minutes), so the most an attacker achieves is a short wait.
A right password clears the (login, address) counter: the owner's own typos
do not slow their next sign-in. It also makes the address known for that
login (for REFRESH_TOKEN_TTL): from a known address the per-login limit from
anywhere does not apply, so not even many addresses together can hold the
owner back where they signed in before. The current password asked by a password
change passes the same rules, per account (a stolen access token must not
become a way to guess the password). Logins are keyed by the folded text typed,
not the account it names, so throttling tells nothing about which emails and
usernames belong together.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from bridge.errors import RateLimited
from realtime_server.base.settings import Settings
from storage.base import Store
from storage.challenges import LimitRule, challenges_store
from storage.sql.schema import fold

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

    @staticmethod
    def _login(login: str) -> str:
        # Hashed: the table of counters holds no emails, and keys stay short.
        return hashlib.sha256(fold(login).encode()).hexdigest()[:32]

    def _password_hits(self, subject: str, ip: str) -> dict[str, LimitRule]:
        s = self._s
        window = s.login_window * 1000
        return {
            f"{subject}|{ip}": LimitRule(
                s.login_per_account_ip,
                window,
                int(s.login_backoff * 1000),
                free=s.login_free_tries,
            ),
            f"login:ip:{ip}": LimitRule(s.login_per_ip, window),
            subject: LimitRule(s.login_per_account, s.login_account_window * 1000),
        }

    async def before_login(self, login: str, ip: str) -> None:
        subject = f"login:{self._login(login)}"
        hits = self._password_hits(subject, ip)
        known = await self._challenges.live_counters([f"known:{subject}|{ip}"], self.now_ms())
        if known:
            # The owner's own address: the limit from anywhere is not theirs to pay.
            del hits[subject]
        await self.admit(hits, "Too many sign-in tries; wait before trying again.")

    async def signed_in(self, login: str, ip: str) -> None:
        """A right password from ``ip``: clear its back-off, and know the address
        (for as long as a refresh token lives) so a crowd of guessers elsewhere
        cannot hold its owner back."""
        subject = f"login:{self._login(login)}"
        await self._challenges.clear_counters([f"{subject}|{ip}"])
        remember = LimitRule(2**31 - 1, self._s.refresh_token_ttl * 1000)
        await self._challenges.hit({f"known:{subject}|{ip}": remember}, self.now_ms())

    async def before_password_check(self, user_id: str, ip: str) -> None:
        """The current password asked to change it: a stolen access token must
        not become a way to guess the password, so the login rules apply."""
        hits = self._password_hits(f"password:{user_id}", ip)
        await self.admit(hits, "Too many password tries; wait before trying again.")

    async def password_checked(self, user_id: str, ip: str) -> None:
        await self._challenges.clear_counters([f"password:{user_id}|{ip}"])

    async def before_register(self, ip: str) -> None:
        rule = LimitRule(self._s.register_per_ip, self._s.register_window * 1000)
        await self.admit({f"register:ip:{ip}": rule}, "Too many sign-ups from here; wait.")

    async def before_refresh(self, ip: str) -> None:
        rule = LimitRule(self._s.refresh_per_ip, self._s.refresh_window * 1000)
        await self.admit({f"refresh:ip:{ip}": rule}, "Too many token refreshes from here; wait.")

    async def before_discover(self, user_id: str, hashes: int) -> None:
        rule = LimitRule(self._s.discover_per_day, DAY_MS, cost=max(hashes, 1))
        await self.admit(
            {f"discover:user:{user_id}": rule},
            "Too many phone numbers checked today; the rest can be checked tomorrow.",
        )

    async def before_search(self, user_id: str) -> None:
        rule = LimitRule(self._s.user_search_per_minute, MINUTE_MS)
        await self.admit({f"search:user:{user_id}": rule}, "Too many searches; slow down.")
