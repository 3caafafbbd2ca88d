"""Firebase Cloud Messaging, HTTP v1 API.

The wire (https://firebase.google.com/docs/cloud-messaging/send-message):

1. An OAuth2 access token from the service account: a JWT signed RS256 with
   the account's private key (``iss`` = client_email, ``scope`` =
   firebase.messaging, ``aud`` = token_uri, one hour), POSTed to ``token_uri``
   as ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=...``.
   The token is cached until a minute before ``expires_in``; one refused with
   401 is dropped and fetched again once.
2. ``POST {fcm_url}/v1/projects/{project_id}/messages:send`` with
   ``{"message": {"token": ..., "notification": ..., "data": ..., "android": ...}}``.
   Errors carry ``error.details[].errorCode``: ``UNREGISTERED`` means the
   token is dead; 429 and 5xx are retried (``Retry-After`` honoured).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import trio

from .message import Outcome, PushMessage, Result

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_EARLY = 60.0  # seconds before expiry that a cached access token is renewed


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    project_id: str
    client_email: str
    private_key: str  # PEM
    token_uri: str

    @classmethod
    def load(cls, path: str | Path) -> ServiceAccount:
        raw = json.loads(Path(path).read_text())
        return cls(raw["project_id"], raw["client_email"], raw["private_key"], raw["token_uri"])


def fcm_body(token: str, m: PushMessage, app_id: str = "") -> dict[str, Any]:
    notification: dict[str, Any] = {"title": m.title}
    if m.body:
        notification["body"] = m.body
    android: dict[str, Any] = {
        "priority": "high" if m.urgent else "normal",
        "collapse_key": m.collapse_id,
        "notification": {"notification_count": m.badge, "tag": m.collapse_id},
    }
    if app_id:  # FCM drops the push for another app that got this token
        android["restricted_package_name"] = app_id
    if m.urgent:
        android["ttl"] = "30s"  # a ring that arrives late is noise
    return {
        "message": {
            "token": token,
            "notification": notification,
            "data": {"kind": m.kind, **m.data},
            "android": android,
        }
    }


class FcmSender:
    provider = "fcm"

    def __init__(
        self,
        client: httpx.AsyncClient,
        account: ServiceAccount,
        *,
        base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._account = account
        self._url = f"{base_url.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (access token, renew after)
        self._lock = trio.Lock()  # one exchange at a time; the others wait for its token
        self.exchanges = 0  # how many times a token was fetched (statistics, tests)

    def _assertion(self, now: float) -> str:
        claims = {
            "iss": self._account.client_email,
            "scope": SCOPE,
            "aud": self._account.token_uri,
            "iat": int(now),
            "exp": int(now) + 3600,
        }
        return jwt.encode(claims, self._account.private_key, algorithm="RS256")

    async def access_token(self) -> str:
        async with self._lock:
            now = self._clock()
            if self._token is not None and now < self._token[1]:
                return self._token[0]
            r = await self._client.post(
                self._account.token_uri,
                data={"grant_type": GRANT_TYPE, "assertion": self._assertion(now)},
            )
            r.raise_for_status()
            body = r.json()
            self.exchanges += 1
            ttl = float(body.get("expires_in", 3600))
            self._token = (str(body["access_token"]), now + max(ttl - _EARLY, 0.0))
            return self._token[0]

    async def send(self, token: str, m: PushMessage, *, app_id: str = "") -> Result:
        try:
            for first in (True, False):
                bearer = await self.access_token()
                r = await self._client.post(
                    self._url,
                    json=fcm_body(token, m, app_id),
                    headers={"Authorization": f"Bearer {bearer}"},
                )
                if r.status_code == 401 and first:  # revoked early: fetch a new one once
                    self._token = None
                    continue
                return _result(r)
        except httpx.HTTPStatusError as exc:  # the token exchange failed
            code = exc.response.status_code
            retry = code == 429 or code >= 500
            return Result(Outcome.RETRY if retry else Outcome.FAILED, f"oauth {code}")
        except (httpx.TransportError, ValueError, KeyError) as exc:
            return Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        return Result(Outcome.FAILED, "unauthorized")


def _error_code(r: httpx.Response) -> str:
    try:
        details = r.json()["error"].get("details", [])
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
    for d in details if isinstance(details, list) else []:
        if isinstance(d, dict) and "errorCode" in d:
            return str(d["errorCode"])
    return ""


def _result(r: httpx.Response) -> Result:
    if r.status_code == 200:
        return Result(Outcome.SENT)
    code = _error_code(r)
    if code == "UNREGISTERED":
        return Result(Outcome.DEAD, code)
    if r.status_code == 429 or r.status_code >= 500:
        after = r.headers.get("retry-after", "")
        return Result(
            Outcome.RETRY, code or str(r.status_code), float(after) if after.isdigit() else None
        )
    return Result(Outcome.FAILED, code or str(r.status_code))
