"""Sending SMS: a console sender for development and Twilio's REST API.

``build_sms(settings)`` picks one from ``SMS_PROVIDER``:

- ``console`` logs each message (and keeps the last ones in ``outbox``), for
  development and tests: nothing leaves the machine.
- ``twilio`` posts to ``{TWILIO_API_BASE}/2010-04-01/Accounts/{sid}/Messages.json``
  with HTTP Basic auth (account SID, auth token) and the form fields ``To``,
  ``Body`` and ``From`` (or ``MessagingServiceSid`` when TWILIO_FROM is an
  ``MG...`` service id). Twilio answers 201 with the message's JSON, or a
  4xx/5xx JSON body ``{"code", "message", "status"}``.

With ``twilio`` chosen but its secrets empty, sending answers 503
``not_configured`` instead of failing at start-up, so the rest of the server
runs. A provider that refuses or cannot be reached raises ``DeliveryFailed``
(502 ``delivery_failed``); its message is logged, not shown to the client.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bridge.errors import BridgeError, RestCode
from realtime_server.base.settings import Settings

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

OUTBOX_SIZE = 100


class DeliveryFailed(BridgeError):
    default_code = RestCode.DELIVERY_FAILED


class NotConfigured(BridgeError):
    default_code = RestCode.NOT_CONFIGURED


class SmsSender(Protocol):
    async def send_sms(self, to: str, body: str) -> None:
        """Send ``body`` to the E.164 number ``to``; raise DeliveryFailed if refused."""


@dataclass(frozen=True, slots=True)
class Sent:
    to: str
    body: str


class ConsoleSms:
    def __init__(self) -> None:
        self.outbox: deque[Sent] = deque(maxlen=OUTBOX_SIZE)

    async def send_sms(self, to: str, body: str) -> None:
        self.outbox.append(Sent(to, body))
        log.info("SMS to %s: %s", to, body)


class DisabledSms:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def send_sms(self, to: str, body: str) -> None:
        raise NotConfigured(f"SMS is not configured: {self.reason}")


class TwilioSms:
    def __init__(
        self, account_sid: str, auth_token: str, sender: str, *, base_url: str, timeout: float
    ) -> None:
        self._auth = (account_sid, auth_token)
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._sender_field = "MessagingServiceSid" if sender.startswith("MG") else "From"
        self._sender = sender
        self._timeout = timeout

    async def send_sms(self, to: str, body: str) -> None:
        import httpx  # on first use: a node without Twilio configured never needs it

        form = {"To": to, "Body": body, self._sender_field: self._sender}
        try:
            # A client per send: codes are rare, and nothing is left open to leak.
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(self._url, data=form, auth=self._auth)
        except httpx.HTTPError as exc:
            log.warning("Twilio unreachable: %r", exc)
            raise DeliveryFailed() from exc
        if response.status_code != 201:
            log.warning(
                "Twilio refused an SMS: %s %s", response.status_code, _twilio_error(response)
            )
            raise DeliveryFailed()


def _twilio_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return f"{body.get('code')}: {body.get('message')}" if isinstance(body, dict) else str(body)


def build_sms(settings: Settings) -> SmsSender:
    match settings.sms_provider:
        case "console":
            return ConsoleSms()
        case "twilio":
            missing = [
                name
                for name in ("twilio_account_sid", "twilio_auth_token", "twilio_from")
                if not getattr(settings, name)
            ]
            if missing:
                return DisabledSms(", ".join(n.upper() for n in missing) + " not set")
            return TwilioSms(
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                settings.twilio_from,
                base_url=settings.twilio_api_base,
                timeout=settings.delivery_timeout,
            )
        case other:
            return DisabledSms(f"unknown SMS_PROVIDER {other!r} (console or twilio)")
