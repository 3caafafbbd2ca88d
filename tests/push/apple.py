"""Apple's APNs, on loopback over HTTP/2 (cleartext, prior knowledge).

A Quart-Trio app served by hypercorn, which answers HTTP/2 on a plain socket
when the client opens with the HTTP/2 preface. ``POST /3/device/<token>``
checks, as APNs does: HTTP/2 only; ``authorization: bearer <JWT>`` verifying
ES256 with the team's public key, ``kid`` = the key id, ``iss`` = the team,
``iat`` within the hour; ``apns-topic`` = the bundle id (``.voip`` for VoIP
pushes); ``apns-push-type`` alert or voip; ``apns-priority`` 10 or 5;
``apns-collapse-id`` at most 64 bytes; a JSON body with an ``aps`` dictionary.
Answers 200 with ``apns-id``, or ``{"reason": ...}`` with 400/403/410/503.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jwt
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

TEAM_ID = "TEAM123456"
KEY_ID = "KEY1234567"
BUNDLE_ID = "com.example.Chat"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())


def p8(key: ec.EllipticCurvePrivateKey) -> str:
    """The key as Apple's ``AuthKey_<id>.p8`` file holds it (PKCS#8 PEM)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class Push:
    token: str
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class Apple:
    url: str = ""
    pushes: list[Push] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)  # tokens answered 410
    unavailable: int = 0  # answer this many with 503 first
    arrived: trio.Event = field(default_factory=trio.Event)
    read: int = 0

    def key_file(self, path: Path, key: ec.EllipticCurvePrivateKey = SIGNING_KEY) -> Path:
        path.write_text(p8(key))
        return path

    async def next_push(self, timeout: float = 5) -> Push:  # noqa: ASYNC109
        with trio.fail_after(timeout):
            while len(self.pushes) <= self.read:
                await self.arrived.wait()
                self.arrived = trio.Event()
        self.read += 1
        return self.pushes[self.read - 1]


def _refuse(a: Apple, status: int, reason: str) -> Response:
    a.refused.append(reason)
    return Response(json.dumps({"reason": reason}), status=status, content_type="application/json")


def build_app(a: Apple) -> QuartTrio:
    app = QuartTrio("apple")
    public = SIGNING_KEY.public_key()

    @app.post("/3/device/<token>")
    async def push(token: str) -> Response:
        if request.http_version != "2":
            return _refuse(a, 400, "HTTP/2 required")
        h = request.headers
        bearer = h.get("authorization", "")
        if not bearer.startswith("bearer "):
            return _refuse(a, 403, "MissingProviderToken")
        raw = bearer.removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(raw)
            claims = jwt.decode(raw, public, algorithms=["ES256"], options={"require": ["iat"]})
        except jwt.PyJWTError:
            return _refuse(a, 403, "InvalidProviderToken")
        if header.get("kid") != KEY_ID or claims.get("iss") != TEAM_ID:
            return _refuse(a, 403, "InvalidProviderToken")
        if time.time() - claims["iat"] > 3600:
            return _refuse(a, 403, "ExpiredProviderToken")
        push_type = h.get("apns-push-type", "")
        topic = h.get("apns-topic", "")
        wanted = f"{BUNDLE_ID}.voip" if push_type == "voip" else BUNDLE_ID
        if push_type not in {"alert", "voip"} or topic != wanted:
            return _refuse(a, 400, "TopicDisallowed")
        if h.get("apns-priority", "10") not in {"10", "5"}:
            return _refuse(a, 400, "BadPriority")
        if len(h.get("apns-collapse-id", "").encode()) > 64:
            return _refuse(a, 400, "BadCollapseId")
        body = await request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("aps"), dict):
            return _refuse(a, 400, "PayloadEmpty")
        if a.unavailable > 0:
            a.unavailable -= 1
            return _refuse(a, 503, "ServiceUnavailable")
        if token in a.gone:
            return Response(
                json.dumps({"reason": "Unregistered", "timestamp": int(time.time() * 1000)}),
                status=410,
                content_type="application/json",
            )
        a.pushes.append(Push(token, {k.lower(): v for k, v in h.items()}, body))
        a.arrived.set()
        return Response("", status=200, headers={"apns-id": str(uuid.uuid4()).upper()})

    return app


@asynccontextmanager
async def open_apple() -> AsyncIterator[Apple]:
    a = Apple()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, build_app(a), config))
        a.url = binds[0]
        yield a
        nursery.cancel_scope.cancel()
