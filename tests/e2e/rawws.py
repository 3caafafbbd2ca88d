"""A bare WebSocket client for misbehaving on purpose (bad frames, no pongs, no reads)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Request,
)

from protocol import codec, frames


class RawWS:
    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._buf: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        await self.stream.send_all(self.ws.send(BytesMessage(data)))

    async def send_text(self, text: str) -> None:
        from wsproto.events import TextMessage

        await self.stream.send_all(self.ws.send(TextMessage(text)))

    async def send_frame(self, frame: object) -> None:
        await self.send_bytes(codec.encode(frame))  # type: ignore[arg-type]

    async def receive_frame(self) -> frames.ServerFrame | None:
        """The next server frame, or None once the server closed. Never answers pings."""
        while True:
            for event in self.ws.events():
                if isinstance(event, Message):
                    self._buf.append(bytes(event.data))
                    if event.message_finished:
                        data, self._buf = b"".join(self._buf), []
                        return codec.decode_server(data)
                elif isinstance(event, CloseConnection):
                    self.close_code, self.close_reason = event.code, event.reason or ""
                    return None
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return None
            if not data:
                return None
            self.ws.receive_data(data)

    async def wait_closed(self) -> int | None:
        while await self.receive_frame() is not None:
            pass
        return self.close_code


@asynccontextmanager
async def open_raw(port: int, *, rcvbuf: int | None = None) -> AsyncIterator[RawWS]:
    sock = trio.socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, rcvbuf)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host="127.0.0.1", target="/ws")))
    while True:
        data = await stream.receive_some(65536)
        assert data, "server closed during the upgrade"
        ws.receive_data(data)
        events = list(ws.events())
        if any(isinstance(e, AcceptConnection) for e in events):
            break
    try:
        yield RawWS(stream, ws)
    finally:
        await stream.aclose()


def hello(token: str, v: int = 1, **extra: object) -> frames.Hello:
    return frames.Hello(id=1, d=frames.HelloData(token=token, v=v, **extra))  # type: ignore[arg-type]
