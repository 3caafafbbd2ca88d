"""Lean protocol clients for the harness: thousands of connections, one thread.

``protocol.client`` gives every connection its own trio tasks, which is right
for an app and wrong for a harness process that must keep up with a server
fanning out hundreds of thousands of frames a second: there the harness, not
the server, would be measured. Here a connection is a small object (``LeanConn``)
and one ``Loop`` per worker process drives all of that process's connections
from one thread with ``selectors`` (epoll), parsing server frames by hand.

It speaks the real protocol: the HTTP upgrade (Sec-WebSocket-Accept checked),
masked client frames (RFC 6455 5.3), ``hello`` with the user's token and
resume cursors, answers to the server's pings, and the close handshake.

Timing: message texts the harness sends start with the sender's wall clock in
nanoseconds (``time.time_ns()``: one clock for every process on the host).
Every read also fetches the kernel's receive timestamp (SO_TIMESTAMPNS: when
the bytes reached this socket, before any harness code ran), so a delivery's
latency is known twice: *arrival* (sent -> in the client's socket: the
server's part) and *read* (sent -> parsed by the harness: adds the harness's
own delay). Reports give both.

Plain peers: ``Loop(speaks="raw")`` drives a bare broadcaster instead (no
``hello``: a connection is live once upgraded; every binary or text message is
one delivery whose payload starts with the stamp), ``speaks="nats"`` a NATS
server over WebSocket (``CONNECT``, ``SUB``; each ``MSG`` is one delivery).
The ``plain`` scenario uses these to measure the peers with the same client.

Delivery checks: each connection keeps the set of seqs it has seen per room
(``msg.new`` and its own acked sends), counts a repeat as a duplicate, never
as a delivery (clients dedupe by room and seq), and reports how many seqs
below the highest it never saw (``gaps``).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from protocol import codec, frames
from protocol.version import PROTOCOL_VERSION

# Not exported by Python's socket module; this is Linux's (asm-generic) value.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_ANCILLARY = socket.CMSG_SPACE(16)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RECEIVE_SIZE = 1 << 18
MAX_HEAD = 16 * 1024

# Connection states, in order.
CONNECTING, UPGRADING, HELLO, SYNCING, LIVE, CLOSED = range(6)

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class _Envelope(msgspec.Struct):
    t: str
    re: int | None = None
    code: str = ""
    msg: str = ""
    # Decoded only for the frame types the harness reads (msg.new, ok).
    d: msgspec.Raw = msgspec.Raw()


class _Msg(msgspec.Struct):
    room: str
    seq: int
    text: str = ""


_decode_envelope = msgspec.msgpack.Decoder(_Envelope).decode
_decode_msg = msgspec.msgpack.Decoder(_Msg).decode


def masked_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    """One client frame (FIN set), masked with ``key`` as RFC 6455 requires."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    if not n:
        return head + key
    mask = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        n, "little"
    )
    return head + key + body


def stamp_of(text: str) -> int:
    """The sender's ``time.time_ns()`` at the head of a harness message text, or 0."""
    head = text[:19]
    return int(head) if len(head) == 19 and head.isdigit() else 0


class LeanConn:
    """One protocol session driven by a ``Loop``; read its counters when done."""

    __slots__ = (
        "token",
        "device",
        "cursors",
        "sock",
        "state",
        "rbuf",
        "wbuf",
        "key",
        "accept",
        "next_id",
        "msgs",
        "replayed",
        "acks",
        "errors",
        "last_error",
        "close_code",
        "seen",
        "dups",
        "sent_at",
        "post_room",
        "post_left",
        "post_pad",
        "posted",
        "opened_ns",
        "live_ns",
        "last_ack_ns",
    )

    def __init__(
        self, token: str, *, device: str = "bench", cursors: dict[str, int] | None = None
    ) -> None:
        self.token = token
        self.device = device
        self.cursors = dict(cursors or {})
        self.sock: socket.socket | None = None
        self.state = CONNECTING
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.key = os.urandom(4)
        self.accept = b""
        self.next_id = 2  # 1 is the hello
        self.msgs = 0  # unique msg.new received (live and replayed)
        self.replayed = 0  # of which before resume.done
        self.acks = 0
        self.errors = 0
        self.last_error = ""
        self.close_code: int | None = None
        # room -> seqs seen (msg.new and own acked sends)
        self.seen: dict[str, set[int]] = {}
        self.dups = 0
        self.sent_at: dict[int, int] = {}  # request id -> time_ns when sent
        self.post_room = ""
        self.post_left = 0
        self.post_pad = ""
        self.posted = 0
        self.opened_ns = 0
        self.live_ns = 0
        self.last_ack_ns = 0

    def gaps(self) -> int:
        """Seqs missing between each room's cursor and the highest seq seen."""
        missing = 0
        for room, seqs in self.seen.items():
            if seqs:
                floor = self.cursors.get(room, 0)
                missing += max(seqs) - floor - sum(1 for s in seqs if s > floor)
        return missing


class Loop:
    """All connections of one harness process, on one epoll, in one thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sample_every: int = 1,
        timestamps: bool = True,
        speaks: str = "project",
    ) -> None:
        if speaks not in ("project", "raw", "nats"):
            raise ValueError(f"speaks must be project, raw or nats, not {speaks!r}")
        self.host, self.port = host, port
        self.speaks = speaks
        # NATS: what is left of a protocol operation split across frames, per connection.
        self._nats_rest: dict[int, bytes] = {}
        self.sel = selectors.EpollSelector()
        self.conns: list[LeanConn] = []
        self.sample_every = max(1, sample_every)
        self.timestamps = timestamps
        # Latency samples, nanoseconds: msg.new arrival / read, ok arrival.
        self.arrival_ns: list[int] = []
        self.read_ns: list[int] = []
        self.ack_ns: list[int] = []
        self.msgs = 0
        self.acks = 0
        self.errors = 0
        self.live = 0
        self.ended = 0  # connections closed or failed
        self.failed = 0  # of which before reaching LIVE
        self.first_msg_ns = 0
        self.last_msg_ns = 0
        self.opening = 0  # connections between open() and LIVE (or their end)
        self._counter = 0
        self._pending: list[LeanConn] = []
        self._concurrency = 1
        self._request_head = (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        ).encode()

    # ----- running -----------------------------------------------------------

    def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Serve every connection until ``done()`` (True) or the timeout (False)."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._open_pending()
            self.step(min(left, 0.05))
        return True

    def step(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            conn = key.data
            if mask & _WRITE:
                self._on_writable(conn)
            if mask & _READ and conn.sock is not None:
                self._on_readable(conn)

    # ----- connecting ----------------------------------------------------------

    def connect_all(
        self, conns: Iterable[LeanConn], *, concurrency: int = 200, timeout: float = 120.0
    ) -> bool:
        """Open ``conns`` (``concurrency`` handshakes at a time) until each is live or failed."""
        conns = list(conns)
        self._pending = conns[::-1]
        self._concurrency = concurrency
        target = self.live + self.failed + len(conns)
        return self.run_until(
            lambda: not self._pending and self.live + self.failed >= target, timeout
        )

    def _open_pending(self) -> None:
        if not self._pending:
            return
        while self._pending and self.opening < self._concurrency:
            self.open(self._pending.pop())

    def open(self, conn: LeanConn) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.timestamps:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        conn.sock = sock
        conn.state = CONNECTING
        conn.opened_ns = time.time_ns()
        self.conns.append(conn)
        self.opening += 1
        err = sock.connect_ex((self.host, self.port))
        if err not in (0, errno.EINPROGRESS):
            self._end(conn, f"connect: {os.strerror(err)}")
            return
        self.sel.register(sock, _WRITE, conn)

    def _upgrade_request(self, conn: LeanConn) -> bytes:
        nonce = base64.b64encode(os.urandom(16))
        conn.accept = base64.b64encode(hashlib.sha1(nonce + _GUID).digest())
        return self._request_head + b"Sec-WebSocket-Key: " + nonce + b"\r\n\r\n"

    def _on_upgrade(self, conn: LeanConn) -> bool:
        buf = conn.rbuf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._end(conn, "upgrade: response head too large")
            return False
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        status, _, rest = head.partition("\r\n")
        headers = {}
        for line in rest.split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status.split(" ")[1:2] != ["101"]:
            self._end(conn, f"upgrade refused: {status}")
            return False
        if headers.get("sec-websocket-accept", "").encode() != conn.accept:
            self._end(conn, "upgrade: wrong Sec-WebSocket-Accept")
            return False
        if self.speaks == "raw":
            self._go_live(conn, time.time_ns())
            return True
        if self.speaks == "nats":
            conn.state = SYNCING  # live once the PONG says the SUB is in place
            ops = b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB bench 1\r\nPING\r\n'
            self.send(conn, masked_frame(0x2, ops, conn.key))
            return True
        conn.state = HELLO
        hello = frames.Hello(
            id=1,
            d=frames.HelloData(
                token=conn.token, v=PROTOCOL_VERSION, device=conn.device, cursors=conn.cursors
            ),
        )
        self.send(conn, masked_frame(0x2, codec.encode(hello), conn.key))
        return True

    # ----- sending -------------------------------------------------------------

    def send(self, conn: LeanConn, data: bytes) -> None:
        sock = conn.sock
        if sock is None:
            return
        if conn.wbuf:
            conn.wbuf += data
            return
        try:
            n = sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._end(conn, f"send: {exc}")
            return
        if n < len(data):
            conn.wbuf += data[n:]
            self.sel.modify(sock, _READ | _WRITE, conn)

    def send_message(self, conn: LeanConn, room: str, text: str, cid: str) -> int:
        rid = conn.next_id
        conn.next_id += 1
        payload = codec.encode(
            frames.Send(id=rid, d=frames.SendData(room=room, cid=cid, text=text))
        )
        conn.sent_at[rid] = time.time_ns()
        self.send(conn, masked_frame(0x2, payload, conn.key))
        return rid

    def post(self, conn: LeanConn, room: str, count: int, *, window: int, pad: str = "") -> None:
        """Send ``count`` stamped messages to ``room``, keeping ``window`` unanswered."""
        conn.post_room, conn.post_left, conn.post_pad = room, count, pad
        for _ in range(min(window, count)):
            self._post_next(conn)

    def _post_next(self, conn: LeanConn) -> None:
        if conn.post_left <= 0:
            return
        conn.post_left -= 1
        conn.posted += 1
        text = f"{time.time_ns()} {conn.post_pad}"
        self.send_message(conn, conn.post_room, text, f"c{conn.posted}")

    def close_all(self, timeout: float = 10.0) -> None:
        """Close every open connection with 1000 and wait (bounded) for the server's close."""
        for conn in self.conns:
            if conn.sock is not None and conn.state >= HELLO:
                self.send(conn, masked_frame(0x8, (1000).to_bytes(2, "big"), conn.key))
        self.run_until(lambda: all(c.sock is None for c in self.conns), timeout)
        for conn in self.conns:
            if conn.sock is not None:
                self._end(conn, "")

    # ----- receiving -----------------------------------------------------------

    def _on_writable(self, conn: LeanConn) -> None:
        sock = conn.sock
        assert sock is not None
        if conn.state == CONNECTING:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._end(conn, f"connect: {os.strerror(err)}")
                return
            conn.state = UPGRADING
            self.sel.modify(sock, _READ, conn)
            self.send(conn, self._upgrade_request(conn))
            return
        try:
            n = sock.send(conn.wbuf)
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(conn, f"send: {exc}")
            return
        del conn.wbuf[:n]
        if not conn.wbuf:
            self.sel.modify(sock, _READ, conn)

    def _on_readable(self, conn: LeanConn) -> None:
        sock = conn.sock
        assert sock is not None
        try:
            if self.timestamps:
                data, ancillary, _, _ = sock.recvmsg(RECEIVE_SIZE, _ANCILLARY)
            else:
                data, ancillary = sock.recv(RECEIVE_SIZE), []
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(conn, f"receive: {exc}")
            return
        now = time.time_ns()
        if not data:
            self._end(conn, "" if conn.close_code is not None else "server closed the socket")
            return
        arrival = now
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack_from("qq", value)
                arrival = sec * 1_000_000_000 + nsec
        conn.rbuf += data
        if conn.state == UPGRADING and not self._on_upgrade(conn):
            return
        self._parse(conn, arrival, now)

    def _parse(self, conn: LeanConn, arrival: int, now: int) -> None:
        buf = conn.rbuf
        pos, end = 0, len(buf)
        while end - pos >= 2 and conn.sock is not None:
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
            if self.speaks != "project" and opcode in (0x1, 0x2):
                self._on_plain(conn, bytes(buf[start:pos]), arrival, now)
            elif opcode == 0x2:
                self._on_frame(conn, _decode_envelope(buf[start:pos]), arrival, now)
            elif opcode == 0x9:
                self.send(conn, masked_frame(0xA, bytes(buf[start:pos]), conn.key))
            elif opcode == 0x8:
                payload = bytes(buf[start:pos])
                conn.close_code = int.from_bytes(payload[:2], "big") if n >= 2 else 1005
                if conn.state < LIVE:
                    conn.last_error = (
                        f"closed {conn.close_code}: {payload[2:].decode(errors='replace')}"
                    )
                self.send(conn, masked_frame(0x8, payload[:2], conn.key))
                self._end(conn, conn.last_error)
        del buf[:pos]

    def _on_frame(self, conn: LeanConn, env: _Envelope, arrival: int, now: int) -> None:
        t = env.t
        if t == "msg.new":
            m = _decode_msg(env.d)
            seqs = conn.seen.get(m.room)
            if seqs is None:
                seqs = conn.seen[m.room] = set()
            if m.seq in seqs:
                conn.dups += 1
                return
            seqs.add(m.seq)
            conn.msgs += 1
            self.msgs += 1
            if conn.state == SYNCING:
                conn.replayed += 1
            if not self.first_msg_ns:
                self.first_msg_ns = arrival
            self.last_msg_ns = arrival
            self._counter += 1
            if self._counter % self.sample_every == 0:
                sent = stamp_of(m.text)
                if sent:
                    self.arrival_ns.append(arrival - sent)
                    self.read_ns.append(now - sent)
        elif t == "ok":
            conn.acks += 1
            self.acks += 1
            conn.last_ack_ns = arrival
            sent = conn.sent_at.pop(env.re or 0, 0)
            if sent:
                self.ack_ns.append(arrival - sent)
            if env.d:
                m = _decode_msg(env.d)
                conn.seen.setdefault(m.room, set()).add(m.seq)
            self._post_next(conn)
        elif t == "err":
            conn.errors += 1
            self.errors += 1
            conn.last_error = f"{env.code}: {env.msg}"
            if conn.sent_at.pop(env.re or 0, 0):
                self._post_next(conn)
        elif t == "welcome":
            conn.state = SYNCING
        elif t == "resume.done":
            self._go_live(conn, arrival)

    def _go_live(self, conn: LeanConn, at: int) -> None:
        conn.state = LIVE
        conn.live_ns = at
        self.live += 1
        self.opening -= 1

    def _on_plain(self, conn: LeanConn, payload: bytes, arrival: int, now: int) -> None:
        """A peer's message: raw, one stamped payload; NATS, protocol operations."""
        if self.speaks == "raw":
            self._delivered(conn, payload[:19].decode("latin-1"), arrival, now)
            return
        data = self._nats_rest.pop(id(conn), b"") + payload
        pos = 0
        while True:
            end = data.find(b"\r\n", pos)
            if end < 0:
                break
            line = data[pos:end]
            if line.startswith(b"MSG "):
                size = int(line.rsplit(b" ", 1)[1])
                if len(data) < end + 4 + size:
                    break
                self._delivered(conn, data[end + 2 : end + 21].decode("latin-1"), arrival, now)
                pos = end + 4 + size
                continue
            if line == b"PING":
                self.send(conn, masked_frame(0x2, b"PONG\r\n", conn.key))
            elif line == b"PONG" and conn.state == SYNCING:
                self._go_live(conn, arrival)
            pos = end + 2
        if pos < len(data):
            self._nats_rest[id(conn)] = data[pos:]

    def _delivered(self, conn: LeanConn, text: str, arrival: int, now: int) -> None:
        """One plain delivery (peers have no seqs: counted, not deduplicated)."""
        conn.msgs += 1
        self.msgs += 1
        if not self.first_msg_ns:
            self.first_msg_ns = arrival
        self.last_msg_ns = arrival
        self._counter += 1
        if self._counter % self.sample_every == 0:
            sent = stamp_of(text)
            if sent:
                self.arrival_ns.append(arrival - sent)
                self.read_ns.append(now - sent)

    def _end(self, conn: LeanConn, why: str) -> None:
        if conn.state == CLOSED:
            return
        if why and not conn.last_error:
            conn.last_error = why
        if conn.state < LIVE:
            self.failed += 1
            self.opening -= 1
        elif conn.state == LIVE:
            self.live -= 1
        conn.state = CLOSED
        self.ended += 1
        sock, conn.sock = conn.sock, None
        if sock is not None:
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()

    # ----- results -------------------------------------------------------------

    def reset_counters(self) -> None:
        """Start counting afresh (after a warm-up); seqs already seen stay seen."""
        self.arrival_ns, self.read_ns, self.ack_ns = [], [], []
        self.msgs = self.acks = self.errors = 0
        self.first_msg_ns = self.last_msg_ns = 0
        for conn in self.conns:
            conn.msgs = conn.replayed = conn.acks = conn.errors = conn.dups = 0

    def summary(self) -> dict[str, Any]:
        """Counters of every connection, for the parent to add up."""
        errors = [c.last_error for c in self.conns if c.last_error]
        return {
            "conns": len(self.conns),
            "live": self.live,
            "failed": self.failed,
            "ended": self.ended,
            "msgs": self.msgs,
            "replayed": sum(c.replayed for c in self.conns),
            "acks": self.acks,
            "errors": self.errors,
            "dups": sum(c.dups for c in self.conns),
            "gaps": sum(c.gaps() for c in self.conns),
            "first_error": errors[0] if errors else "",
            "first_msg_ns": self.first_msg_ns,
            "last_msg_ns": self.last_msg_ns,
        }
