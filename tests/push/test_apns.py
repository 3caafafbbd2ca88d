"""The APNs sender against Apple's wire format over HTTP/2 on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio
from cryptography.hazmat.primitives.asymmetric import ec

from realtime_server.push.apns import ApnsSender
from realtime_server.push.message import Outcome, PushMessage
from tests.push.apple import BUNDLE_ID, KEY_ID, TEAM_ID, Apple

TOKEN = "ab" * 32
MESSAGE = PushMessage("message", "Ada", "hello", badge=3, collapse_id="r_1", data={"room": "r_1"})
RING = PushMessage("call.ring", "Ada", "Incoming call", badge=0, collapse_id="c_1", urgent=True)


def sender(client: httpx.AsyncClient, apple: Apple, key_file: Path) -> ApnsSender:
    return ApnsSender.from_key_file(
        client, key_file, key_id=KEY_ID, team_id=TEAM_ID, base_url=apple.url
    )


async def test_an_alert_goes_over_http2_with_apples_headers_and_one_cached_jwt(
    apple: Apple, tmp_path: Path
) -> None:
    key = apple.key_file(tmp_path / "AuthKey.p8")
    with trio.fail_after(10):
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            apns = sender(client, apple, key)
            assert (await apns.send(TOKEN, MESSAGE, app_id=BUNDLE_ID)).outcome is Outcome.SENT
            assert (await apns.send(TOKEN, RING, app_id=BUNDLE_ID)).outcome is Outcome.SENT
    assert apns.signed == 1 and apple.refused == []
    alert, ring = await apple.next_push(), await apple.next_push()
    assert alert.token == TOKEN
    assert (alert.headers["apns-push-type"], alert.headers["apns-topic"]) == ("alert", BUNDLE_ID)
    assert alert.headers["apns-collapse-id"] == "r_1"
    assert alert.payload == {
        "aps": {"alert": {"title": "Ada", "body": "hello"}, "badge": 3, "sound": "default"},
        "kind": "message",
        "room": "r_1",
    }
    assert ring.headers["apns-push-type"] == "voip"
    assert ring.headers["apns-topic"] == f"{BUNDLE_ID}.voip"
    assert (ring.headers["apns-priority"], ring.headers["apns-expiration"]) == ("10", "0")


async def test_410_is_dead_503_is_retry_and_a_foreign_key_is_refused(
    apple: Apple, tmp_path: Path
) -> None:
    apple.gone.add(TOKEN)
    forged = apple.key_file(tmp_path / "forged.p8", ec.generate_private_key(ec.SECP256R1()))
    with trio.fail_after(10):
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            apns = sender(client, apple, apple.key_file(tmp_path / "AuthKey.p8"))
            gone = await apns.send(TOKEN, MESSAGE, app_id=BUNDLE_ID)
            apple.unavailable = 1
            busy = await apns.send("cd" * 32, MESSAGE, app_id=BUNDLE_ID)
            refused = await sender(client, apple, forged).send("cd" * 32, MESSAGE, app_id=BUNDLE_ID)
    assert gone.outcome is Outcome.DEAD
    assert (busy.outcome, busy.detail) == (Outcome.RETRY, "ServiceUnavailable")
    assert (refused.outcome, refused.detail) == (Outcome.FAILED, "InvalidProviderToken")
    assert apple.pushes == []
