"""One TCP listener for both REST and the WebSocket gateway.

Each new connection's request head is read here. ``GET /ws`` with an
``Upgrade: websocket`` header goes to our own wsproto gateway (the fan-out hot
path: pre-framed bytes, one write per batch); every other connection is handed,
bytes already read included, to hypercorn's trio connection handler serving
the Quart-Trio app. Apps configure one host and port.

Hypercorn's ``TCPServer`` is an internal API (hence the pin in pyproject); the
glue is the small ``_ReplayStream`` below.

Rules against slow or hostile HTTP peers (issue 12, items 12 and 24):
- The request head must arrive within ``HTTP_HEAD_TIMEOUT`` (16 KiB at most).
- While a request body is awaited, the peer must send something at least every
  ``HTTP_READ_TIMEOUT`` seconds, or the connection is closed. (Only then: a
  long response such as the AI event stream is not cut for a silent client.)
- A response write that the peer does not take within ``HTTP_WRITE_TIMEOUT``
  closes the connection.
- Every request's body is read to its end, even when the app answered without
  reading it (401 before the body, 413): otherwise the next request on a
  keep-alive connection would wait behind the unread bytes. Up to
  ``_DRAIN_LIMIT`` bytes are discarded to keep the connection; past that the
  answer says ``Connection: close`` and the connection is closed gently (our
  side first, then whatever the peer still sends is discarded for a moment),
  so the peer reads the answer instead of a reset.
- At most ``REST_MAX_CONNECTIONS`` REST connections are open at once; the next
  one is answered 503 with ``Retry-After`` and closed. The cap sits below the
  process's descriptor limit, so sockets (``/ws``) still connect when REST is
  flooded.
- ``ListenerControl.stop_accepting()`` (a draining shutdown) closes the
  listening sockets while open connections carry on.

With ``reuse_port`` the sockets set ``SO_REUSEPORT``: several worker
processes (``serve --workers N``) listen on one port and the kernel spreads
new connections over them.
"""

from __future__ import annotations

import errno
import logging
import math
import resource
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
# Seconds a closing REST connection keeps discarding what the peer still sends.
_LINGER = 2.0
# Unread request body discarded to keep a connection alive after an early answer.
_DRAIN_LIMIT = 1024 * 1024
_CONN_KEY = "realtime_server.connection"
_BACKLOG = 4096

WebSocketHandler = Callable[[trio.SocketStream, bytes], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The listener's bounds on HTTP peers; the node fills them from Settings."""

    head_timeout: float = HEAD_TIMEOUT
    read_timeout: float = 30.0
    write_timeout: float = 30.0
    keep_alive_timeout: float = 75.0
    max_connections: int = 0  # REST connections at once; 0 = half the descriptor limit


class ListenerControl:
    """What the node can ask of a running listener, and what it can see."""

    def __init__(self) -> None:
        self._accepting = trio.CancelScope()
        self.rest_connections = 0
        self.rest_requests = 0  # in flight: a draining shutdown waits for these
        self.rest_refused = 0

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections are not touched."""
        self._accepting.cancel()


class _ReplayStream(trio.abc.HalfCloseableStream):
    """A socket stream that first yields bytes we already read from it.

    It also enforces the read and write timeouts and closes gently (see the
    module's rules); ``awaiting_body`` is set by the ASGI wrapper below.
    """

    def __init__(self, stream: trio.SocketStream, prefix: bytes, limits: HttpLimits) -> None:
        self._stream = stream
        self._prefix = prefix
        self._limits = limits
        self.socket = stream.socket  # hypercorn reads peer and local addresses here
        self._read_scope: trio.CancelScope | None = None
        self._awaiting_body = False
        self._closing = False
        self._reader_left = trio.Event()
        self._closed = trio.Event()
        self._eof_sent = False
        self.on_closed: Callable[[], None] = lambda: None
        self.requests = 0  # in flight on this connection (the ASGI wrapper counts)
        self.peer_eof = False

    def maybe_finished(self) -> None:
        """The peer has gone and no request is in flight: nothing is left to do.

        Hypercorn would still keep the connection (and its memory) until its
        keep-alive timer fires when the peer leaves while an answer is being
        finished; ``on_closed`` ends it now."""
        if self.peer_eof and self.requests == 0:
            self.on_closed()

    @property
    def awaiting_body(self) -> bool:
        return self._awaiting_body

    @awaiting_body.setter
    def awaiting_body(self, value: bool) -> None:
        # Re-arms (or lifts) the deadline of a read already waiting.
        self._awaiting_body = value
        if self._read_scope is not None:
            self._read_scope.deadline = self._read_deadline()

    def _read_deadline(self) -> float:
        if not self._awaiting_body:
            return math.inf
        return trio.current_time() + self._limits.read_timeout

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        if self._closing:
            return b""
        with trio.CancelScope(deadline=self._read_deadline()) as scope:
            self._read_scope = scope
            try:
                data = bytes(await self._stream.receive_some(max_bytes))
                if not data:
                    self.peer_eof = True
                    self.maybe_finished()
                return data
            finally:
                self._read_scope = None
                if self._closing:
                    self._reader_left.set()
        if self._closing:
            return b""  # aclose() took over the reading
        # A body that stalls: hypercorn ends the connection on TooSlowError.
        raise trio.TooSlowError

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with trio.move_on_after(self._limits.write_timeout):
            await self._stream.send_all(data)
            return
        # The peer does not take our answer: give up on it (hypercorn sends
        # under a shield, so without this bound it would wait forever).
        await trio.aclose_forcefully(self._stream)
        raise trio.BrokenResourceError("the peer did not read the response in time")

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        self._shutdown_write()

    def _shutdown_write(self) -> None:
        # Synchronous on purpose: trio's send_eof refuses (BusyResourceError)
        # while another task is in a send, and then no FIN would ever go out.
        if self._eof_sent:
            return
        self._eof_sent = True
        try:
            self._stream.socket.shutdown(trio.socket.SHUT_WR)
        except OSError:
            pass

    async def aclose(self) -> None:
        """Close gently: our side first, then discard what the peer still sends
        for a moment, so an answer sent before its body was read (401, 413) is
        not destroyed by a reset. Shielded and bounded by _LINGER; a second
        call waits for the first."""
        if self._closing:
            with trio.CancelScope(shield=True):
                await self._closed.wait()
            return
        self._closing = True
        with trio.CancelScope(shield=True):
            with trio.move_on_after(_LINGER):
                if self._read_scope is not None:
                    self._read_scope.cancel()  # hypercorn's reader sees EOF...
                    await self._reader_left.wait()  # ...and lets go of the socket
                self._shutdown_write()
                try:
                    while await self._stream.receive_some(65536):
                        pass
                except (
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                    trio.BusyResourceError,
                ):
                    pass
            await trio.aclose_forcefully(self._stream)
            self._closed.set()
            self.on_closed()


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
    """What arrives up to the end of the head (or MAX_HEAD bytes, or EOF);
    the caller bounds the time."""
    buf = bytearray()
    while b"\r\n\r\n" not in buf and len(buf) < MAX_HEAD:
        data = await stream.receive_some(MAX_HEAD)
        if not data:
            break
        buf += data
    return bytes(buf)


def default_max_connections() -> int:
    """Half the process's descriptor limit: the other half stays for sockets,
    storage and the listener itself."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 10_000
    return max(8, soft // 2)


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
_BUSY_BODY = (
    b'{"error": {"code": "overloaded", "message": '
    b'"Too many open HTTP connections; retry shortly."}}'
)


def _body_length(scope: dict[str, Any]) -> int | None:
    """The request body's declared size: 0 when there is none, None when chunked."""
    length = 0
    for name, value in scope.get("headers", ()):
        lowered = name.lower()
        if lowered == b"transfer-encoding" and b"chunked" in value.lower():
            return None
        if lowered == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
    return length


class _BodyPump:
    """Reads one request's body from hypercorn as fast as it arrives.

    Hypercorn hands body chunks to the app through a small queue and stops
    reading the socket while it is full; an app that answers without reading
    the body (401 before the body, 413) then leaves the connection wedged:
    the next request on it waits behind unread bytes. So this pump always
    reads: it queues chunks for the app until the app has answered, and
    discards them after. The end of the answer is held back until the body
    has fully arrived (at most _DRAIN_LIMIT more bytes, within the read
    timeout), so the connection stays usable; a larger or unsized rest gets
    ``Connection: close`` instead.
    """

    def __init__(
        self,
        receive: Any,
        declared: int | None,
        conn: _ReplayStream | None,
        closer: trio.Nursery,
    ) -> None:
        self._receive = receive
        self._closer = closer
        self._declared = declared
        self._conn = conn
        self._to_app, self._from_pump = trio.open_memory_channel[dict[str, Any]](16)
        self._put_scope: trio.CancelScope | None = None
        self.received = 0
        self.body_done = trio.Event()
        self.answered = False
        self.close_after = False
        if declared == 0:
            self.body_done.set()
        if conn is not None:
            conn.awaiting_body = not self.body_done.is_set()

    async def pump(self) -> None:
        try:
            await self._pump()
        except Exception:  # never let one request take the listener down
            log.exception("request body pump failed")
            self._done()

    async def _pump(self) -> None:
        async with self._to_app:
            while True:
                message: dict[str, Any] = await self._receive()
                kind = message["type"]
                if kind == "http.request":
                    self.received += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        self._done()
                elif kind == "http.disconnect":
                    self._done()
                if not self.answered or kind == "http.disconnect" or self.body_done.is_set():
                    with trio.CancelScope() as self._put_scope:
                        try:
                            await self._to_app.send(message)
                        except trio.BrokenResourceError:
                            pass  # the app is gone: discard
                    self._put_scope = None
                if kind == "http.disconnect":
                    return

    def _done(self) -> None:
        self.body_done.set()
        if self._conn is not None:
            self._conn.awaiting_body = False

    async def receive(self) -> dict[str, Any]:
        try:
            return await self._from_pump.receive()
        except trio.EndOfChannel:
            return {"type": "http.disconnect"}

    def stop_queueing(self) -> None:
        """The app answered (or ended): what is still sent is discarded."""
        self.answered = True
        if self._put_scope is not None:
            self._put_scope.cancel()

    async def send(self, send: Any, message: dict[str, Any], read_timeout: float) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.stop_queueing()
            if not self.body_done.is_set():
                left = None if self._declared is None else self._declared - self.received
                if left is None or left > _DRAIN_LIMIT:
                    self.close_after = True
                    headers = [(n, v) for n, v in message.get("headers", ()) if n != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)
        elif kind == "http.response.body" and not message.get("more_body", False):
            if not self.close_after and not self.body_done.is_set():
                # Hold the end of the answer until the body is in, so hypercorn
                # can take the next request on this connection.
                with trio.move_on_after(read_timeout):
                    await self.body_done.wait()
            if not self.body_done.is_set():
                self.close_after = True
            # Shielded: Quart cancels its own tasks once the answer is out, and
            # a cancel landing inside hypercorn's end-of-response steps leaves
            # the connection neither recycled nor closed (the old 4-20 s hang).
            # Bounded: writes by HTTP_WRITE_TIMEOUT, the disconnect by our pump.
            with trio.CancelScope(shield=True):
                await send(message)
        else:
            await send(message)
        if self.close_after and self._conn is not None and not message.get("more_body", True):
            # The answer is out and the connection cannot serve another
            # request: close it (gently) now, whatever state hypercorn is in.
            self._closer.start_soon(self._conn.aclose)


def _count_and_drain(
    app: ASGIApp, control: ListenerControl, nursery: trio.Nursery, limits: HttpLimits
) -> ASGIApp:
    """The ASGI app, with in-flight requests counted and every body read (see _BodyPump)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        conn: _ReplayStream | None = (scope.get("state") or {}).get(_CONN_KEY)
        body = _BodyPump(receive, _body_length(scope), conn, nursery)
        # In the listener's nursery: it outlives the app until hypercorn says
        # the request is over (http.disconnect), so hypercorn never blocks.
        nursery.start_soon(body.pump)

        async def send_through(message: dict[str, Any]) -> None:
            await body.send(send, message, limits.read_timeout)

        control.rest_requests += 1
        if conn is not None:
            conn.requests += 1
        try:
            await app(scope, body.receive, send_through)
        finally:
            control.rest_requests -= 1
            body.stop_queueing()
            if conn is not None:
                conn.requests -= 1
                conn.maybe_finished()

    return wrapped


async def serve_node_listener(
    app: Any,
    websocket_handler: WebSocketHandler,
    *,
    host: str,
    port: int,
    limits: HttpLimits | None = None,
    control: ListenerControl | None = None,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve REST (``app``, ASGI) and ``/ws`` on one port until cancelled.

    ``task_status.started`` gets the bound port (useful with port 0).
    ``reuse_port``: share the port with other processes (``SO_REUSEPORT``).
    """
    limits = limits or HttpLimits()
    control = control or ListenerControl()
    max_rest = limits.max_connections or default_max_connections()
    config = HypercornConfig()
    config.keep_alive_timeout = limits.keep_alive_timeout
    config.accesslog = None
    lifespan_state: dict[str, Any] = {}
    if reuse_port:
        listeners = await open_shared_listeners(host, port, backlog=_BACKLOG)
    else:
        listeners = await trio.open_tcp_listeners(port, host=host, backlog=_BACKLOG)
    bound = listeners[0].socket.getsockname()[1]

    async with trio.open_nursery() as nursery:
        asgi = wrap_app(
            _count_and_drain(app, control, nursery, limits), config.wsgi_max_body_size, "asgi"
        )
        context = WorkerContext(None)
        lifespan = Lifespan(asgi, config, lifespan_state)

        async def handle(stream: trio.SocketStream) -> None:
            head = b""
            try:
                with trio.move_on_after(limits.head_timeout):
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
                try:
                    await serving
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass  # the peer went away during the upgrade
                except Exception:
                    # One connection's failure must never end the listener
                    # (and with it every other connection).
                    log.exception("socket connection failed")
                return
            replay = _ReplayStream(stream, head, limits)
            if control.rest_connections >= max_rest:
                control.rest_refused += 1
                with trio.move_on_after(limits.write_timeout):
                    try:
                        await stream.send_all(_BUSY % (len(_BUSY_BODY), _BUSY_BODY))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                await replay.aclose()
                return
            control.rest_connections += 1
            try:
                state = lifespan_state.copy()
                state[_CONN_KEY] = replay
                with trio.CancelScope() as connection_scope:
                    # Once the socket is closed nothing of hypercorn's connection
                    # has work left; its keep-alive timer task would otherwise
                    # hold it (and its memory) for HTTP_KEEP_ALIVE_TIMEOUT.
                    replay.on_closed = connection_scope.cancel
                    await TCPServer(
                        asgi,
                        config,
                        context,
                        ConnectionState(state),
                        replay,  # type: ignore[arg-type]
                    )
            finally:
                # Before trio's serve_listeners closes the socket outright.
                await replay.aclose()
                control.rest_connections -= 1

        await nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        task_status.started(bound)
        with control._accepting:
            # Connections run in our nursery, not serve_listeners' own: they
            # outlive stop_accepting() (a draining shutdown).
            await trio.serve_listeners(handle, listeners, handler_nursery=nursery)
        for listener in listeners:
            await listener.aclose()
        await trio.sleep_forever()


async def open_shared_listeners(host: str, port: int, *, backlog: int) -> list[trio.SocketListener]:
    """``trio.open_tcp_listeners`` with ``SO_REUSEPORT``: one port, several processes.

    Every socket of the group must set it (the worker supervisor's
    placeholder does too), and Linux only groups sockets of the same user.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError(errno.ENOPROTOOPT, "SO_REUSEPORT is not available on this system")
    addresses = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    try:
        for family, type_, proto, _, address in addresses:
            sock = trio.socket.socket(family, type_, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind(address)
                sock.listen(backlog)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners
