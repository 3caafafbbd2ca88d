"""The benchmark's provider: OpenAI's streaming wire format at a small, steady cost per delta.

``bench ai`` needs a provider that sends thousands of deltas a second on
schedule while costing the shared 2 cores as little as possible, or the
provider (not the relay under test) would be measured. So this one is not
``FakeOpenAI`` on trio: one thread, one epoll, and one timer heap for all
streams; each delta is a pre-built ``chat.completion.chunk`` with its stamp
spliced in, sent with one ``send`` (HTTP/1.1 chunked, keep-alive).

``POST /v1/chat/completions`` (any model) streams ``chunks`` deltas
``interval`` seconds apart on a fixed schedule (a slow reader does not
stretch it); delta ``k``'s text is ``t<ns> ``, ``ns`` being ``time.time_ns()``
when it was sent: the same clock as every process on the host and as the
kernel's receive timestamps (SO_TIMESTAMPNS). Then the finish chunk, the
usage chunk (always: ``include_usage`` is what the relay asks for) and
``data: [DONE]``. A prompt whose last message is ``warm-up`` gets
``WARM_UP_CHUNKS`` deltas instead: the bench warms every path with it.
``GET /v1/models`` lists ``stamped``.
"""

from __future__ import annotations

import heapq
import json
import selectors
import socket
import time
from dataclasses import dataclass, field

WARM_UP = "warm-up"
WARM_UP_CHUNKS = 3
MAX_HEAD = 64 * 1024

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def _json_response(status: str, body: object) -> bytes:
    data = json.dumps(body).encode()
    return b"HTTP/1.1 %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (
        status.encode(),
        len(data),
        data,
    )


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    rbuf: bytearray = field(default_factory=bytearray)
    wbuf: bytearray = field(default_factory=bytearray)
    streaming: bool = False
    closed: bool = False
    # The stream in progress: deltas left, pre-built chunk halves.
    left: int = 0
    sent: int = 0
    prefix: bytes = b""
    suffix: bytes = b""
    cid: str = ""


class StampedServer:
    def __init__(self, chunks: int, interval: float, host: str = "127.0.0.1") -> None:
        self.chunks = chunks
        self.interval = interval
        self.sel = selectors.EpollSelector()
        self.listener = socket.create_server((host, 0), backlog=4096)
        self.listener.setblocking(False)
        self.port: int = self.listener.getsockname()[1]
        self.sel.register(self.listener, _READ, None)
        # (due, tie-breaker, conn): every stream's next delta, one heap.
        self._due: list[tuple[float, int, _Conn]] = []
        self._tie = 0
        self._requests = 0
        self.deltas_sent = 0

    def serve_forever(self) -> None:
        while True:
            now = time.monotonic()
            due = self._due
            while due and due[0][0] <= now:
                at, _, conn = heapq.heappop(due)
                self._next_delta(conn, at)
            timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
            for key, mask in self.sel.select(timeout):
                conn = key.data
                if conn is None:
                    self._accept()
                    continue
                if mask & _WRITE:
                    self._flush(conn)
                if mask & _READ and not conn.closed:
                    self._read(conn)

    # ----- connections -----

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sel.register(sock, _READ, _Conn(sock))

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.sel.unregister(conn.sock)
        conn.sock.close()

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.rbuf += data
        while not conn.streaming and not conn.closed and self._request(conn):
            pass

    def _send(self, conn: _Conn, data: bytes) -> None:
        if conn.closed:
            return
        if conn.wbuf:
            conn.wbuf += data
            return
        try:
            n = conn.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self._close(conn)
            return
        if n < len(data):
            conn.wbuf += data[n:]
            self.sel.modify(conn.sock, _READ | _WRITE, conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            n = conn.sock.send(conn.wbuf)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        del conn.wbuf[:n]
        if not conn.wbuf:
            self.sel.modify(conn.sock, _READ, conn)

    # ----- HTTP -----

    def _request(self, conn: _Conn) -> bool:
        """Answer one complete request from ``rbuf``; False if it is not all here yet."""
        buf = conn.rbuf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._close(conn)
            return False
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(buf) < end + 4 + length:
            return False
        body = bytes(buf[end + 4 : end + 4 + length])
        del buf[: end + 4 + length]
        method, target = head[0].split(" ")[:2]
        if method == "GET" and target.endswith("/models"):
            models = {"object": "list", "data": [{"id": "stamped", "object": "model"}]}
            self._send(conn, _json_response("200 OK", models))
        elif method == "POST" and target.endswith("/chat/completions"):
            self._start(conn, json.loads(body))
        else:
            self._send(conn, _json_response("404 Not Found", {"error": {"message": "not found"}}))
        return True

    def _start(self, conn: _Conn, payload: dict[str, object]) -> None:
        self._requests += 1
        messages = payload.get("messages") or []
        last = messages[-1].get("content") if isinstance(messages, list) and messages else ""
        model = str(payload.get("model", "stamped"))
        conn.cid = f"chatcmpl-{self._requests}"
        conn.streaming = True
        conn.left = WARM_UP_CHUNKS if last == WARM_UP else self.chunks
        conn.sent = 0
        conn.prefix = (
            f'data: {{"id":"{conn.cid}","object":"chat.completion.chunk",'
            f'"created":{int(time.time())},"model":{json.dumps(model)},'
            '"system_fingerprint":"fp_local","choices":[{"index":0,"delta":{"content":"t'
        ).encode()
        conn.suffix = b' "},"logprobs":null,"finish_reason":null}]}\n\n'
        self._send(conn, _HEAD)
        self._schedule(conn, time.monotonic())

    def _schedule(self, conn: _Conn, at: float) -> None:
        self._tie += 1
        heapq.heappush(self._due, (at, self._tie, conn))

    def _next_delta(self, conn: _Conn, due: float) -> None:
        if conn.closed:
            return
        payload = conn.prefix + str(time.time_ns()).encode() + conn.suffix
        self._send(conn, _chunked(payload))
        self.deltas_sent += 1
        conn.left -= 1
        conn.sent += 1
        if conn.left > 0:
            # A fixed schedule: the next one is due ``interval`` after this one was due.
            self._schedule(conn, due + self.interval)
            return
        self._send(conn, self._tail(conn))
        conn.streaming = False
        while conn.rbuf and not conn.closed and not conn.streaming and self._request(conn):
            pass

    def _tail(self, conn: _Conn) -> bytes:
        base = {
            "id": conn.cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "stamped",
        }
        finish = {
            **base,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
        }
        usage = {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": 1,
                "completion_tokens": conn.sent,
                "total_tokens": 1 + conn.sent,
            },
        }
        events = b"".join(
            b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
            for e in (finish, usage)
        )
        return _chunked(events + b"data: [DONE]\n\n") + b"0\r\n\r\n"
