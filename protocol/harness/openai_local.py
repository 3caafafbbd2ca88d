"""A small local server speaking OpenAI's chat-completions streaming wire format.

``POST /v1/chat/completions`` with ``stream: true`` answers ``text/event-stream``:
one ``data: {chat.completion.chunk}`` line per delta, a last chunk with
``usage`` (and no choices) when ``stream_options.include_usage`` is set, then
``data: [DONE]``, exactly like api.openai.com. ``GET /v1/models`` lists the
models. The model name picks the behaviour, so one server serves every case:

    <anything else>  stream ``reply`` word by word, ``delay`` seconds apart
    fail-500         HTTP 500 with an OpenAI error body
    malformed        one good chunk, then a line that is not JSON
    truncated        two chunks, then the body ends without [DONE]
    reset            two chunks, then the TCP connection is dropped mid-body
    silent           headers, then nothing (first-token timeout)
    mute             reads the request, then sends nothing at all, not even
                     the response headers, until the client goes away
    stall            one chunk, then nothing until the client goes away
    stamped          ``chunks`` deltas ``delay`` apart, each ``t<ns> `` where ns is
                     ``time.time_ns()`` when it was sent (one clock for every
                     process on the host, and the kernel's receive timestamps):
                     the benchmark reads each delta's send time from its text

Used by the AI tests (in-process). ``realtime-server bench ai`` runs the
stamped model in its own process instead (``python -m
protocol.harness.openai_local``), served by ``stamped_server.StampedServer``:
one thread, one epoll and one timer heap for every stream, so the provider's
own cost per delta stays small beside the server's under test.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

DEFAULT_REPLY = "Hello there! This is the local test model answering your question."


@dataclass
class FakeOpenAI:
    reply: str = DEFAULT_REPLY
    delay: float = 0.0
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Completion id -> the client closed its connection while we were streaming.
    disconnected: dict[str, trio.Event] = field(default_factory=dict)
    streams_started: int = 0
    chunks: int = 200  # deltas of a "stamped" stream

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    # ----- HTTP -----

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _read_request(conn, stream)
                if request is None:
                    return
                keep = await self._answer(conn, stream, request, body)
                if not keep or conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await stream.aclose()

    async def _answer(
        self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request, body: bytes
    ) -> bool:
        path = request.target.decode()
        if request.method == b"GET" and path.endswith("/models"):
            models = {"object": "list", "data": [{"id": "test-model", "object": "model"}]}
            await _send_json(conn, stream, 200, models)
            return True
        if request.method != b"POST" or not path.endswith("/chat/completions"):
            await _send_json(conn, stream, 404, {"error": {"message": "not found"}})
            return True
        payload = json.loads(body)
        self.requests.append(payload)
        model = payload["model"]
        if model == "fail-500":
            error = {"error": {"message": "upstream exploded", "type": "server_error"}}
            await _send_json(conn, stream, 500, error)
            return True
        if model == "mute":
            cid = f"chatcmpl-{len(self.requests)}"
            gone = self.disconnected[cid] = trio.Event()
            await _wait_gone(stream, gone)
            return False
        return await self._stream(conn, stream, payload)

    async def _stream(
        self, conn: h11.Connection, stream: trio.SocketStream, payload: dict[str, Any]
    ) -> bool:
        model = payload["model"]
        cid = f"chatcmpl-{len(self.requests)}"
        gone = self.disconnected[cid] = trio.Event()
        self.streams_started += 1
        headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)))

        async def send(data: bytes) -> None:
            await stream.send_all(conn.send(h11.Data(data=data)))

        words = [w + " " for w in self.reply.split(" ")]
        words[-1] = words[-1].rstrip()
        if model == "stamped":
            return await self._stamped(conn, stream, cid, model)
        if model == "silent":
            await _wait_gone(stream, gone)
            return False
        try:
            for i, word in enumerate(words):
                if model in {"truncated", "reset"} and i == 2:
                    if model == "reset":
                        return False  # the finally of _connection drops the socket
                    await stream.send_all(conn.send(h11.EndOfMessage()))
                    return True
                if model == "malformed" and i == 1:
                    await send(b"data: {this is not json\n\n")
                    await stream.send_all(conn.send(h11.EndOfMessage()))
                    return True
                if model == "stall" and i == 1:
                    await _wait_gone(stream, gone)
                    return False
                if self.delay and i:
                    await trio.sleep(self.delay)
                await send(_chunk(cid, model, {"content": word}, sent_at=time.perf_counter()))
            await send(_chunk(cid, model, {}, finish="stop"))
            if (payload.get("stream_options") or {}).get("include_usage"):
                prompt = sum(len(m["content"]) // 4 + 1 for m in payload["messages"])
                usage = {
                    "prompt_tokens": prompt,
                    "completion_tokens": len(words),
                    "total_tokens": prompt + len(words),
                }
                await send(_chunk(cid, model, None, usage=usage))
            await send(b"data: [DONE]\n\n")
            await stream.send_all(conn.send(h11.EndOfMessage()))
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            gone.set()
            return False

    async def _stamped(
        self, conn: h11.Connection, stream: trio.SocketStream, cid: str, model: str
    ) -> bool:
        # The next send is due at a fixed schedule, so a slow reader does not
        # stretch the provider's own pace.
        due = trio.current_time()
        try:
            for _ in range(self.chunks):
                await trio.sleep_until(due)
                due += self.delay
                text = f"t{time.time_ns()} "
                data = _chunk(cid, model, {"content": text})
                await stream.send_all(conn.send(h11.Data(data=data)))
            usage = {"prompt_tokens": 1, "completion_tokens": self.chunks}
            tail = _chunk(cid, model, {}, finish="stop") + _chunk(cid, model, None, usage=usage)
            await stream.send_all(conn.send(h11.Data(data=tail + b"data: [DONE]\n\n")))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False


def _chunk(
    cid: str,
    model: str,
    delta: dict[str, Any] | None,
    *,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    sent_at: float | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_local",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    if sent_at is not None:
        body["x_sent_at"] = sent_at  # extra fields are ignored by clients; the bench reads it
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def _wait_gone(stream: trio.SocketStream, gone: trio.Event) -> None:
    """Park until the client closes its side (what a stop must cause)."""
    try:
        while await stream.receive_some(4096):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    gone.set()


async def _read_request(
    conn: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            if not data and request is None:
                return None, b""
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


async def _send_json(
    conn: h11.Connection, stream: trio.SocketStream, status: int, body: dict[str, Any]
) -> None:
    data = json.dumps(body).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
    await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
    await stream.send_all(conn.send(h11.Data(data=data)))
    await stream.send_all(conn.send(h11.EndOfMessage()))


@asynccontextmanager
async def open_fake_openai(
    reply: str = DEFAULT_REPLY, delay: float = 0.0
) -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(reply=reply, delay=delay)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        yield server
        nursery.cancel_scope.cancel()


def providers_setting(server: FakeOpenAI, *models: str) -> str:
    """The AI_PROVIDERS value pointing at ``server``."""
    models = models or (
        "test-model",
        "fail-500",
        "malformed",
        "truncated",
        "reset",
        "silent",
        "stall",
        "mute",
    )
    return json.dumps(
        {"local": {"base_url": server.base_url, "api_key": "sk-test", "models": list(models)}}
    )


def main(argv: list[str] | None = None) -> None:
    """Serve the stamped model until killed; print the port on stdout once listening."""
    import argparse

    from protocol.harness.stamped_server import StampedServer

    p = argparse.ArgumentParser(prog="python -m protocol.harness.openai_local")
    p.add_argument("--chunks", type=int, default=200, help="deltas per stamped stream")
    p.add_argument("--interval", type=float, default=0.005, help="seconds between deltas")
    args = p.parse_args(argv)
    server = StampedServer(args.chunks, args.interval)
    print(server.port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
