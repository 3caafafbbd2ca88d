"""Sending email: a console sender for development and SendGrid's v3 API.

``build_mailer(settings)`` picks one from ``EMAIL_PROVIDER``:

- ``console`` logs each message (and keeps the last ones in ``outbox``).
- ``sendgrid`` posts ``{SENDGRID_API_BASE}/v3/mail/send`` with
  ``Authorization: Bearer <key>`` and the JSON body
  ``{"personalizations": [{"to": [{"email"}]}], "from": {"email"}, "subject",
  "content": [{"type": "text/plain", "value"}]}``; SendGrid answers 202 with
  an empty body, or 4xx/5xx with ``{"errors": [{"message", "field"}]}``.

The same rules as ``bridge.accounts.sms``: missing secrets answer 503
``not_configured``; a refusal raises ``DeliveryFailed`` (502).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from bridge.accounts.sms import OUTBOX_SIZE, DeliveryFailed, NotConfigured
from realtime_server.base.settings import Settings

log = logging.getLogger(__name__)


class EmailSender(Protocol):
    async def send_email(self, to: str, subject: str, body: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str


class ConsoleEmail:
    def __init__(self) -> None:
        self.outbox: deque[Mail] = deque(maxlen=OUTBOX_SIZE)

    async def send_email(self, to: str, subject: str, body: str) -> None:
        self.outbox.append(Mail(to, subject, body))
        log.info("email to %s: %s: %s", to, subject, body)


class DisabledEmail:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def send_email(self, to: str, subject: str, body: str) -> None:
        raise NotConfigured(f"Email is not configured: {self.reason}")


class SendGridEmail:
    def __init__(self, api_key: str, sender: str, *, base_url: str, timeout: float) -> None:
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._url = f"{base_url.rstrip('/')}/v3/mail/send"
        self._sender = sender
        self._timeout = timeout

    async def send_email(self, to: str, subject: str, body: str) -> None:
        import httpx  # on first use: a node without SendGrid configured never needs it

        payload = {
            "personalizations": [{"to": [{"email": to}]}],
            "from": {"email": self._sender},
            "subject": subject,
            "content": [{"type": "text/plain", "value": body}],
        }
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(self._url, json=payload, headers=self._headers)
        except httpx.HTTPError as exc:
            log.warning("SendGrid unreachable: %r", exc)
            raise DeliveryFailed() from exc
        if response.status_code != 202:
            log.warning(
                "SendGrid refused an email: %s %s", response.status_code, response.text[:300]
            )
            raise DeliveryFailed()


def build_mailer(settings: Settings) -> EmailSender:
    match settings.email_provider:
        case "console":
            return ConsoleEmail()
        case "sendgrid":
            missing = [n for n in ("sendgrid_api_key", "email_from") if not getattr(settings, n)]
            if missing:
                return DisabledEmail(", ".join(n.upper() for n in missing) + " not set")
            return SendGridEmail(
                settings.sendgrid_api_key,
                settings.email_from,
                base_url=settings.sendgrid_api_base,
                timeout=settings.delivery_timeout,
            )
        case other:
            return DisabledEmail(f"unknown EMAIL_PROVIDER {other!r} (console or sendgrid)")
