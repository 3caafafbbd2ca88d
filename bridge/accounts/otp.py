"""One-time codes sent by SMS or email: issue, deliver, check.

Rules:
- A code is ``OTP_LENGTH`` random decimal digits (``secrets``), lives
  ``OTP_TTL`` seconds, works once, and dies after ``OTP_MAX_ATTEMPTS`` wrong
  tries. Asking again replaces the previous code of that purpose.
- Only ``HMAC-SHA256(key, purpose | target | code)`` is stored, with a key
  derived from the server secret: a leaked table cannot be brute-forced
  offline (a 6-digit code is a million guesses).
- Limits are checked before anything else happens (``bridge.accounts.ratelimit``): a
  refused request creates no code and sends nothing.
- If delivery fails the new code is deleted, so no code exists that its
  owner never received. (The previous code was replaced already; asking
  again is the remedy either way.)
- ``OTP_DEV_ECHO`` puts the code in the response. For development only: it
  turns the code into no proof of owning the number.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from bridge.accounts.mailer import EmailSender
from bridge.accounts.ratelimit import Limits
from bridge.accounts.sms import SmsSender
from bridge.errors import BadRequest, BridgeError, RestCode
from realtime_server.base.settings import Settings
from storage.base import Store
from storage.challenges import CodeVerdict, OtpCode, challenges_store


class Purpose(StrEnum):
    SIGNIN = "signin"  # phone sign-in or sign-up
    RESET = "reset"  # forgotten password
    VERIFY_EMAIL = "verify_email"  # prove an account's email


@dataclass(frozen=True, slots=True)
class Issued:
    expires_in: int  # seconds
    code: str | None  # only with OTP_DEV_ECHO


SUBJECTS = {
    Purpose.SIGNIN: "Your sign-in code",
    Purpose.RESET: "Your password reset code",
    Purpose.VERIFY_EMAIL: "Your email verification code",
}


class OtpService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        limits: Limits,
        sms: SmsSender,
        mailer: EmailSender,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._codes = challenges_store(store)
        self._s = settings
        self._limits = limits
        self._sms = sms
        self._mailer = mailer
        self._clock = clock
        self._key = hmac.new(settings.jwt_secret.encode(), b"otp-codes", hashlib.sha256).digest()

    def code_hash(self, purpose: Purpose, target: str, code: str) -> str:
        message = f"{purpose}\x00{target}\x00{code}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def new_code(self) -> str:
        return f"{secrets.randbelow(10**self._s.otp_length):0{self._s.otp_length}d}"

    async def send_sms_code(
        self, purpose: Purpose, phone: str, ip: str, country: int, *, deliver: bool = True
    ) -> Issued:
        """``deliver=False`` spends the limits but stores and sends nothing: the
        answer for a number with no account must cost and look the same."""
        await self._limits.before_send(phone, ip, country)
        if not deliver:
            return Issued(self._s.otp_ttl, None)

        async def send(body: str) -> None:
            await self._sms.send_sms(phone, body)

        return await self._issue(purpose, phone, send)

    async def send_email_code(
        self, purpose: Purpose, email: str, target: str, ip: str, *, deliver: bool = True
    ) -> Issued:
        """Like ``send_sms_code``; ``target`` is what the code is filed under."""
        await self._limits.before_send(target, ip)
        if not deliver:
            return Issued(self._s.otp_ttl, None)

        async def send(body: str) -> None:
            await self._mailer.send_email(email, SUBJECTS[purpose], body)

        return await self._issue(purpose, target, send)

    async def _issue(
        self, purpose: Purpose, target: str, deliver: Callable[[str], Awaitable[None]]
    ) -> Issued:
        code = self.new_code()
        now = int(self._clock() * 1000)
        ttl = self._s.otp_ttl
        await self._codes.put_code(
            OtpCode(
                purpose=purpose.value,
                target=target,
                code_hash=self.code_hash(purpose, target, code),
                created_at=now,
                expires_at=now + ttl * 1000,
                max_attempts=self._s.otp_max_attempts,
            )
        )
        minutes = max(1, ttl // 60)
        body = f"{code} is your code. It expires in {minutes} min. Never share it."
        try:
            await deliver(body)
        except BridgeError:
            await self._codes.delete_code(purpose.value, target)
            raise
        return Issued(ttl, code if self._s.otp_dev_echo else None)

    def check_format(self, code: str) -> None:
        if len(code) != self._s.otp_length or not (code.isascii() and code.isdigit()):
            raise BadRequest(
                f"The code is {self._s.otp_length} digits.",
                code=RestCode.CODE_INVALID,
                field="code",
            )

    async def verify(self, purpose: Purpose, target: str, code: str, ip: str) -> None:
        """Return when ``code`` is right (and spend it); raise otherwise."""
        self.check_format(code)
        await self._limits.before_verify(target, ip)
        now = int(self._clock() * 1000)
        check = await self._codes.check_code(
            purpose.value, target, self.code_hash(purpose, target, code), now
        )
        match check.verdict:
            case CodeVerdict.ACCEPTED:
                await self._limits.verified(target)
            case CodeVerdict.WRONG:
                left = check.attempts_left
                tail = (
                    f"{left} tries left." if left else "That was the last try; ask for a new code."
                )
                raise BadRequest(f"Wrong code; {tail}", code=RestCode.CODE_INVALID, field="code")
            case CodeVerdict.ABSENT:
                raise BadRequest(code=RestCode.CODE_EXPIRED, field="code")
            case _:
                raise AssertionError(check)
