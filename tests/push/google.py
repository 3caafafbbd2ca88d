"""Google's side of FCM, on loopback: the OAuth2 token endpoint and FCM HTTP v1.

One small Quart-Trio app served by hypercorn, speaking the real wire format:

- ``POST /token``: form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``
  and ``assertion``, a JWT that must verify RS256 with the service account's
  public key, name the account as ``iss``, this endpoint as ``aud``, the
  firebase.messaging ``scope`` and live at most an hour; answers
  ``{access_token, expires_in, token_type}`` or ``{error: invalid_grant}``.
- ``POST /v1/projects/{project}/messages:send``: a Bearer token this endpoint
  issued, exactly one target, string-only ``data``; answers ``{name}``, or
  FCM's error JSON: 404 ``UNREGISTERED`` for tokens in ``dead``, 503
  ``UNAVAILABLE`` while ``unavailable`` counts down.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jwt
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from realtime_server.push.fcm import GRANT_TYPE, SCOPE

PROJECT = "chat-example"
CLIENT_EMAIL = "push@chat-example.iam.gserviceaccount.com"
# Made once per test run: RSA key generation is the slow part.
ACCOUNT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class Google:
    url: str = ""
    issued: set[str] = field(default_factory=set)
    exchanges: int = 0
    expires_in: int = 3599  # seconds, as Google answers
    refused_grants: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)
    unavailable: int = 0  # answer this many sends with 503 first
    attempts: int = 0
    arrived: trio.Event = field(default_factory=trio.Event)
    read: int = 0  # messages next_message has returned
    # While set and not yet fired: sends hang (a provider that stopped answering).
    hold: trio.Event | None = None

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def service_account(self, path: Path, key: rsa.RSAPrivateKey = ACCOUNT_KEY) -> Path:
        """Write a service-account JSON file (as the Firebase console gives it)."""
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": "k1",
                    "private_key": pem(key),
                    "client_email": CLIENT_EMAIL,
                    "token_uri": self.token_uri,
                }
            )
        )
        return path

    async def next_message(self, timeout: float = 5) -> dict[str, Any]:  # noqa: ASYNC109
        """The next message FCM accepted (in arrival order)."""
        with trio.fail_after(timeout):
            while len(self.messages) <= self.read:
                await self.arrived.wait()
                self.arrived = trio.Event()
        self.read += 1
        return self.messages[self.read - 1]


def _fcm_error(code: int, status: str, error_code: str, message: str) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "status": status,
            "details": [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": error_code,
                }
            ],
        }
    }
    return Response(json.dumps(body), status=code, content_type="application/json")


def build_app(g: Google) -> QuartTrio:
    app = QuartTrio("google")
    public = ACCOUNT_KEY.public_key()

    @app.post("/token")
    async def token() -> Response:
        form = await request.form
        if form.get("grant_type") != GRANT_TYPE:
            return _grant_refused(g, "unsupported_grant_type")
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                public,
                algorithms=["RS256"],
                audience=g.token_uri,
                issuer=CLIENT_EMAIL,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.PyJWTError as exc:
            return _grant_refused(g, f"invalid_grant: {exc}")
        if claims["scope"] != SCOPE or claims["exp"] - claims["iat"] > 3600:
            return _grant_refused(g, "invalid_scope")
        g.exchanges += 1
        access = "ya29." + secrets.token_urlsafe(24)
        g.issued.add(access)
        body = {"access_token": access, "expires_in": g.expires_in, "token_type": "Bearer"}
        return Response(json.dumps(body), content_type="application/json")

    @app.post("/v1/projects/<project>/messages:send")
    async def send(project: str) -> Response:
        g.attempts += 1
        if g.hold is not None:
            await g.hold.wait()
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in g.issued or project != PROJECT:
            return _fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "bad credentials")
        body = await request.get_json()
        message = body.get("message", {})
        targets = [k for k in ("token", "topic", "condition") if k in message]
        data = message.get("data", {})
        if targets != ["token"] or not all(isinstance(v, str) for v in data.values()):
            return _fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "bad message")
        if message.get("android", {}).get("priority") not in {"normal", "high"}:
            return _fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "bad priority")
        if g.unavailable > 0:
            g.unavailable -= 1
            return _fcm_error(503, "UNAVAILABLE", "UNAVAILABLE", "try again")
        if message["token"] in g.dead:
            return _fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
        g.messages.append(message)
        g.arrived.set()
        name = f"projects/{PROJECT}/messages/0:{secrets.token_hex(8)}"
        return Response(json.dumps({"name": name}), content_type="application/json")

    return app


def _grant_refused(g: Google, why: str) -> Response:
    g.refused_grants.append(why)
    body = {"error": "invalid_grant", "error_description": why}
    return Response(json.dumps(body), status=400, content_type="application/json")


@asynccontextmanager
async def open_google() -> AsyncIterator[Google]:
    g = Google()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, build_app(g), config))
        g.url = binds[0]
        yield g
        nursery.cancel_scope.cancel()
