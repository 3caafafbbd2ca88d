"""Apple Push Notification service, token-based (``.p8`` key), HTTP/2.

The wire (developer.apple.com, "Sending notification requests to APNs"):

- ``POST {apns_url}/3/device/{device token}`` over HTTP/2 only, with the
  JSON payload ``{"aps": {"alert": {...}, "badge": n, "sound": "default"}, ...}``.
- ``authorization: bearer <JWT>``: ES256 with the key from the developer
  account, header ``kid`` = key id, claims ``iss`` = team id and ``iat``.
  Apple refuses a token older than an hour and one renewed more often than
  every 20 minutes (``TooManyProviderTokenUpdates``): it is cached 40 minutes.
- ``apns-topic``: the app's bundle id (``.voip`` appended for VoIP pushes);
  ``apns-push-type``: ``alert`` or ``voip``; ``apns-priority``: 10 (now) or 5
  (when convenient); ``apns-collapse-id``: pushes of one room replace each
  other; ``apns-expiration``: 0 for a ring (deliver now or never).
- Answers: 200 with ``apns-id``; 410 ``Unregistered`` means the token is
  dead; 429 and 5xx are retried; a 403 ``ExpiredProviderToken`` drops the
  cached JWT and is tried once more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

from .message import Outcome, PushMessage, Result

JWT_LIFETIME = 40 * 60.0  # seconds: within Apple's 20-60 minute window


def apns_payload(m: PushMessage) -> dict[str, Any]:
    alert: dict[str, str] = {"title": m.title}
    if m.body:
        alert["body"] = m.body
    aps: dict[str, Any] = {"alert": alert, "badge": m.badge, "sound": "default"}
    return {"aps": aps, "kind": m.kind, **m.data}


def apns_headers(bundle_id: str, m: PushMessage, bearer: str) -> dict[str, str]:
    headers = {
        "authorization": f"bearer {bearer}",
        "apns-topic": f"{bundle_id}.voip" if m.urgent else bundle_id,
        "apns-push-type": "voip" if m.urgent else "alert",
        "apns-priority": "10",
        "apns-collapse-id": m.collapse_id[:64],  # Apple's limit: 64 bytes
    }
    if m.urgent:
        headers["apns-expiration"] = "0"  # a ring that cannot be delivered now is dropped
    return headers


class ApnsSender:
    provider = "apns"

    def __init__(
        self,
        client: httpx.AsyncClient,  # made with http2=True
        *,
        key_pem: str,
        key_id: str,
        team_id: str,
        base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._key = key_pem
        self._key_id = key_id
        self._team_id = team_id
        self._base = base_url.rstrip("/")
        self._clock = clock
        self._jwt: tuple[str, float] | None = None  # (token, renew after)
        self.signed = 0  # how many JWTs were made (statistics, tests)

    @classmethod
    def from_key_file(cls, client: httpx.AsyncClient, path: str | Path, **kw: Any) -> ApnsSender:
        return cls(client, key_pem=Path(path).read_text(), **kw)

    def bearer(self) -> str:
        now = self._clock()
        if self._jwt is None or now >= self._jwt[1]:
            token = jwt.encode(
                {"iss": self._team_id, "iat": int(now)},
                self._key,
                algorithm="ES256",
                headers={"kid": self._key_id},
            )
            self._jwt = (token, now + JWT_LIFETIME)
            self.signed += 1
        return self._jwt[0]

    async def send(self, token: str, m: PushMessage, *, app_id: str) -> Result:
        url = f"{self._base}/3/device/{token}"
        try:
            for first in (True, False):
                r = await self._client.post(
                    url, json=apns_payload(m), headers=apns_headers(app_id, m, self.bearer())
                )
                reason = _reason(r)
                if r.status_code == 403 and reason == "ExpiredProviderToken" and first:
                    self._jwt = None
                    continue
                return _result(r, reason)
        except (httpx.TransportError, ValueError) as exc:
            return Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        return Result(Outcome.FAILED, "ExpiredProviderToken")


def _reason(r: httpx.Response) -> str:
    if r.status_code == 200:
        return ""
    try:
        return str(r.json().get("reason", ""))
    except (ValueError, AttributeError):
        return ""


def _result(r: httpx.Response, reason: str) -> Result:
    if r.status_code == 200:
        return Result(Outcome.SENT, r.headers.get("apns-id", ""))
    if r.status_code == 410:  # Unregistered: the app is gone from the device
        return Result(Outcome.DEAD, reason or "410")
    if r.status_code == 429 or r.status_code >= 500:
        return Result(Outcome.RETRY, reason or str(r.status_code))
    return Result(Outcome.FAILED, reason or str(r.status_code))
