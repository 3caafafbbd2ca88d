"""The local Twilio and SendGrid servers speak the real APIs: their official SDKs work with them.

The SDKs are synchronous (requests / urllib), so they run in a worker thread.
If these pass, what ``bridge.accounts.sms`` and ``bridge.accounts.mailer`` are tested against is
the wire format the real services speak, not one we made up.
"""

from __future__ import annotations

import pytest
import trio
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.onboarding.outside import (
    SENDGRID_KEY,
    TWILIO_FROM,
    TWILIO_SID,
    TWILIO_TOKEN,
    Outside,
)

FR = "+33612345678"


def twilio_send(base_url: str, token: str = TWILIO_TOKEN, to: str = FR) -> object:
    client = Client(TWILIO_SID, token)
    client.api.base_url = base_url
    return client.messages.create(to=to, from_=TWILIO_FROM, body="123456 is your code.")


async def test_the_twilio_sdk_sends_through_the_local_twilio(outside: Outside) -> None:
    with trio.fail_after(20):
        message = await trio.to_thread.run_sync(twilio_send, outside.url)
    assert message.sid.startswith("SM") and message.status == "queued"  # type: ignore[attr-defined]
    assert message.to == FR  # type: ignore[attr-defined]
    assert [(s.to, s.sender, s.body) for s in outside.sms] == [
        (FR, TWILIO_FROM, "123456 is your code.")
    ]


@pytest.mark.parametrize(
    ("token", "to", "status", "code"),
    [("wrong", FR, 401, 20003), (TWILIO_TOKEN, "0612", 400, 21211)],
)
async def test_the_twilio_sdk_reads_the_local_twilio_s_errors(
    outside: Outside, token: str, to: str, status: int, code: int
) -> None:
    with trio.fail_after(20), pytest.raises(TwilioRestException) as refused:
        await trio.to_thread.run_sync(twilio_send, outside.url, token, to)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert outside.sms == []


def sendgrid_send(base_url: str, key: str = SENDGRID_KEY) -> int:
    client = SendGridAPIClient(api_key=key, host=base_url)
    mail = Mail(
        from_email="no-reply@chat.example",
        to_emails="ada@example.com",
        subject="Your code",
        plain_text_content="123456 is your code.",
    )
    return int(client.send(mail).status_code)


async def test_the_sendgrid_sdk_sends_through_the_local_sendgrid(outside: Outside) -> None:
    with trio.fail_after(20):
        status = await trio.to_thread.run_sync(sendgrid_send, outside.url)
    assert status == 202
    [mail] = outside.mail
    assert (mail.to, mail.sender, mail.subject, mail.body) == (
        "ada@example.com",
        "no-reply@chat.example",
        "Your code",
        "123456 is your code.",
    )


async def test_the_sendgrid_sdk_reads_the_local_sendgrid_s_refusal(outside: Outside) -> None:
    from python_http_client.exceptions import UnauthorizedError

    with trio.fail_after(20), pytest.raises(UnauthorizedError):
        await trio.to_thread.run_sync(sendgrid_send, outside.url, "SG.wrong")
    assert outside.mail == []
