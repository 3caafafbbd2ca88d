"""A minimal TURN server for tests: enough of RFC 8656 to answer Allocate and Refresh.

It authenticates like coturn with ``use-auth-secret``: the password of a
username ``"<expiry>:<user>"`` is base64(HMAC-SHA1(shared secret, username)),
the long-term key is MD5(username:realm:password) (RFC 8489), and a username
whose expiry has passed is refused. Written independently of ``bridge.calls.turn``
so the test checks our credentials against the scheme, not against themselves.
Speaks the real wire format through aioice's STUN codec; asyncio, run in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from aioice import stun

REALM = "test.realm"


class TurnServer(asyncio.DatagramProtocol):
    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.nonce = secrets.token_hex(8)
        self.allocations: list[str] = []  # usernames granted
        self.refused: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if request.message_class != stun.Class.REQUEST:
            return
        username = request.attributes.get("USERNAME")
        if username is None or "MESSAGE-INTEGRITY" not in request.attributes:
            self._send(self._error(request, 401, "Unauthorized"), addr)
            return
        key = self._key(username)
        if key is None or not request.check_message_integrity(key):
            self.refused.append(username)
            self._send(self._error(request, 401, "Unauthorized"), addr)
            return
        response = stun.Message(
            message_method=request.message_method,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        if request.message_method == stun.Method.ALLOCATE:
            self.allocations.append(username)
            response.attributes["XOR-RELAYED-ADDRESS"] = ("127.0.0.1", 49152)
            response.attributes["XOR-MAPPED-ADDRESS"] = addr
        response.attributes["LIFETIME"] = request.attributes.get("LIFETIME", 600)
        response.add_message_integrity(key)
        self._send(response, addr)

    def _key(self, username: str) -> bytes | None:
        expiry, _, _user = username.partition(":")
        if not expiry.isdigit() or int(expiry) < time.time():
            return None
        password = base64.b64encode(
            hmac.new(self.secret, username.encode(), hashlib.sha1).digest()
        ).decode()
        return hashlib.md5(f"{username}:{REALM}:{password}".encode()).digest()

    def _error(self, request: stun.Message, code: int, reason: str) -> stun.Message:
        response = stun.Message(
            message_method=request.message_method,
            message_class=stun.Class.ERROR,
            transaction_id=request.transaction_id,
        )
        response.attributes["ERROR-CODE"] = (code, reason)
        response.attributes["REALM"] = REALM
        response.attributes["NONCE"] = self.nonce.encode()
        return response

    def _send(self, message: stun.Message, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(bytes(message), addr)
