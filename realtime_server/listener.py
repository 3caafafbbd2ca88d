"""One TCP listener for both REST and the WebSocket gateway.

Each new connection's request head is read here. ``GET /ws`` with an
``Upgrade: websocket`` header goes to our own wsproto gateway (the fan-out hot
path: pre-framed bytes, one write per batch); every other connection is handed,
bytes already read included, to hypercorn's trio connection handler serving
the Quart-Trio app. Apps configure one host and port.

Hypercorn's ``TCPServer`` is an internal API (hence the pin in pyproject); the
glue is the small ``_ReplayStream`` below.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
HEAD_TIMEOUT = 10.0

WebSocketHandler = Callable[[trio.SocketStream, bytes], Awaitable[None]]


class _ReplayStream(trio.abc.HalfCloseableStream):
    """A socket stream that first yields bytes we already read from it."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix
        self.socket = stream.socket  # hypercorn reads peer and local addresses here

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


def is_websocket_upgrade(head: bytes, path: bytes = b"/ws") -> bool:
    line_end = head.find(b"\r\n")
    parts = head[:line_end].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return False
    target = parts[1].split(b"?", 1)[0]
    if target != path:
        return False
    for line in head[line_end + 2 :].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"upgrade" and value.strip().lower() == b"websocket":
            return True
    return False


async def _read_head(stream: trio.SocketStream) -> bytes:
    buf = bytearray()
    with trio.move_on_after(HEAD_TIMEOUT):
        while b"\r\n\r\n" not in buf and len(buf) < MAX_HEAD:
            data = await stream.receive_some(MAX_HEAD)
            if not data:
                break
            buf += data
    return bytes(buf)


async def serve_node_listener(
    app: Any,
    websocket_handler: WebSocketHandler,
    *,
    host: str,
    port: int,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve REST (``app``, ASGI) and ``/ws`` on one port until cancelled.

    ``task_status.started`` gets the bound port (useful with port 0).
    """
    config = HypercornConfig()
    config.keep_alive_timeout = 75
    config.accesslog = None
    asgi = wrap_app(app, config.wsgi_max_body_size, "asgi")
    context = WorkerContext(None)
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(asgi, config, lifespan_state)
    listeners = await trio.open_tcp_listeners(port, host=host, backlog=4096)
    bound = listeners[0].socket.getsockname()[1]

    async def handle(stream: trio.SocketStream) -> None:
        try:
            head = await _read_head(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await stream.aclose()
            return
        if not head:
            await stream.aclose()
            return
        if is_websocket_upgrade(head):
            # The gateway keeps what it needs of the head: do not hold it here
            # for the connection's whole life.
            serving = websocket_handler(stream, head)
            del head
            await serving
        else:
            await TCPServer(
                asgi,
                config,
                context,
                ConnectionState(lifespan_state.copy()),
                _ReplayStream(stream, head),  # type: ignore[arg-type]
            )

    async with trio.open_nursery() as nursery:
        await nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        task_status.started(bound)
        await trio.serve_listeners(handle, listeners)
