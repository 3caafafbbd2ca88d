"""The FCM sender against Google's wire format on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import trio
from cryptography.hazmat.primitives.asymmetric import rsa

from realtime_server.push.fcm import FcmSender, ServiceAccount
from realtime_server.push.message import Outcome, PushMessage
from tests.push.google import Google

MESSAGE = PushMessage("message", "Ada", "hello", badge=2, collapse_id="r_1", data={"room": "r_1"})


async def test_the_access_token_is_exchanged_once_and_reused(
    google: Google, tmp_path: Path
) -> None:
    account = ServiceAccount.load(google.service_account(tmp_path / "sa.json"))
    with trio.fail_after(10):
        async with httpx.AsyncClient() as client:
            fcm = FcmSender(client, account, base_url=google.url)
            assert (await fcm.send("device-1", MESSAGE)).outcome is Outcome.SENT
            assert (await fcm.send("device-2", MESSAGE)).outcome is Outcome.SENT
    assert google.exchanges == 1 and google.refused_grants == []
    first = await google.next_message()
    assert first["token"] == "device-1"
    assert first["notification"] == {"title": "Ada", "body": "hello"}
    assert first["data"] == {"kind": "message", "room": "r_1"}
    assert first["android"]["priority"] == "normal"
    assert first["android"]["notification"]["notification_count"] == 2


async def test_an_expired_access_token_is_renewed(google: Google, tmp_path: Path) -> None:
    account = ServiceAccount.load(google.service_account(tmp_path / "sa.json"))
    google.expires_in = 65  # renewed a minute early: after 5 s
    now = [time.time() - 10]  # behind the wall clock: the JWTs are never "not yet valid"
    with trio.fail_after(10):
        async with httpx.AsyncClient() as client:
            fcm = FcmSender(client, account, base_url=google.url, clock=lambda: now[0])
            await fcm.send("device-1", MESSAGE)
            now[0] += 4
            await fcm.send("device-1", MESSAGE)
            assert google.exchanges == 1
            now[0] += 1
            await fcm.send("device-1", MESSAGE)
    assert google.exchanges == 2


async def test_provider_answers_become_dead_retry_or_failed(google: Google, tmp_path: Path) -> None:
    account = ServiceAccount.load(google.service_account(tmp_path / "sa.json"))
    google.dead.add("gone")
    with trio.fail_after(10):
        async with httpx.AsyncClient() as client:
            fcm = FcmSender(client, account, base_url=google.url)
            dead = await fcm.send("gone", MESSAGE)
            google.unavailable = 1
            busy = await fcm.send("device-1", MESSAGE)
    assert (dead.outcome, dead.detail) == (Outcome.DEAD, "UNREGISTERED")
    assert busy.outcome is Outcome.RETRY


async def test_an_assertion_signed_with_another_key_gets_no_token(
    google: Google, tmp_path: Path
) -> None:
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = ServiceAccount.load(google.service_account(tmp_path / "sa.json", forged))
    with trio.fail_after(10):
        async with httpx.AsyncClient() as client:
            result = await FcmSender(client, account, base_url=google.url).send("d", MESSAGE)
    assert (result.outcome, result.detail) == (Outcome.FAILED, "oauth 400")
    assert google.messages == [] and "Signature verification failed" in google.refused_grants[0]
