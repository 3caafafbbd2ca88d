"""A lean subscriber: wsproto for the upgrade and for what it sends, a
hand-rolled reader for server frames (unmasked, so parsing is a few slices).

It exists so that hundreds of subscribers in one harness process can keep up
with a fast server; ``protocol.client`` is the full-featured client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Pong, Request

from protocol import codec, frames


class _LeanMsg(msgspec.Struct):
    seq: int = 0
    text: str = ""


class _LeanFrame(msgspec.Struct):
    t: str
    d: _LeanMsg | None = None


_decode = msgspec.msgpack.Decoder(_LeanFrame).decode


@dataclass
class SubscriberStats:
    received: int = 0
    first_ns: int = 0
    last_ns: int = 0
    # (send -> receive) latency samples in nanoseconds, every ``sample_every``-th message.
    latencies: list[int] = field(default_factory=list)


class LeanSubscriber:
    def __init__(self, host: str, port: int, token: str, sample_every: int = 1) -> None:
        self.host, self.port, self.token = host, port, token
        self.sample_every = sample_every
        self.stats = SubscriberStats()
        self._stream: trio.SocketStream | None = None
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._buf = bytearray()

    async def connect(self) -> None:
        """Upgrade, say hello, and return once ``resume.done`` arrived."""
        stream = self._stream = await trio.open_tcp_stream(self.host, self.port)
        ws = self._ws
        await stream.send_all(ws.send(Request(host=self.host, target="/ws")))
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise ConnectionError("server closed during the upgrade")
            ws.receive_data(data)
            if any(isinstance(e, AcceptConnection) for e in ws.events()):
                break
        hello = frames.Hello(id=1, d=frames.HelloData(token=self.token, v=1, device="bench"))
        await stream.send_all(ws.send(BytesMessage(codec.encode(hello))))
        while True:
            payload = await self._next_payload()
            frame = codec.decode_server(payload)
            if isinstance(frame, frames.ResumeDone):
                return
            if isinstance(frame, frames.Err):
                raise ConnectionError(f"server refused: {frame.code} {frame.msg}")

    async def _next_payload(self) -> bytes:
        assert self._stream is not None
        while True:
            got = self._parse_one()
            if got is not None:
                return got
            data = await self._stream.receive_some(1 << 16)
            if not data:
                raise ConnectionError("server closed")
            self._buf += data

    def _parse_one(self) -> bytes | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        n = buf[1] & 0x7F
        head = 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, head = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, head = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < head + n:
            return None
        payload = bytes(buf[head : head + n])
        del buf[: head + n]
        return payload

    async def receive(self, expected: int) -> SubscriberStats:
        """Count ``msg.new`` frames until ``expected`` arrived; answer pings."""
        stream = self._stream
        assert stream is not None
        stats = self.stats
        sample_every = self.sample_every
        buf = self._buf
        while stats.received < expected:
            data = await stream.receive_some(1 << 18)
            if not data:
                raise ConnectionError("server closed")
            now = time.monotonic_ns()
            buf += data
            pos = 0
            end = len(buf)
            while end - pos >= 2:
                b0 = buf[pos]
                n = buf[pos + 1] & 0x7F
                head = 2
                if n == 126:
                    if end - pos < 4:
                        break
                    n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
                elif n == 127:
                    if end - pos < 10:
                        break
                    n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
                if end - pos < head + n:
                    break
                start = pos + head
                pos = start + n
                opcode = b0 & 0x0F
                if opcode == 0x2:
                    frame = _decode(buf[start:pos])
                    if frame.t == "msg.new" and frame.d is not None:
                        stats.received += 1
                        if not stats.first_ns:
                            stats.first_ns = now
                        stats.last_ns = now
                        if stats.received % sample_every == 0:
                            sent = int(frame.d.text.split(" ", 1)[0])
                            stats.latencies.append(now - sent)
                elif opcode == 0x9:
                    await stream.send_all(self._ws.send(Pong(bytes(buf[start:pos]))))
            del buf[:pos]
        return stats

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
