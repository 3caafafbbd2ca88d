"""Reference client for ``/ws``: what the test-suite and the load harness speak.

One connection is one nursery owned by ``open_client`` holding two tasks:
trio-websocket's socket reader and ours, which decodes each frame and routes it::

    a reply (has ``re``) to a pending request  -> wakes that request
    anything else: msg.new, resume.*, err without re, unmatched replies
                                               -> bounded push channel -> next_push()

Rules:
- A request registers its id before its frame is sent, so a reply can never
  arrive unclaimed, and any number of tasks may pipeline requests on one client.
- Our reader never raises. The socket closing, an undecodable frame (we close
  with 1002) and cancellation all end in ``_finish()``, which records
  ``close_info``, fails every pending request with ``ConnectionClosed`` and
  closes the push channel; pushes already buffered are still delivered first.
- A full push channel stalls the reader and with it every reply: exactly what a
  real slow consumer does, so a client that never reads pushes may be closed
  with 4000 (SLOW_CONSUMER). Size ``push_buffer`` for what a test leaves unread.
"""

from __future__ import annotations

import itertools
import ssl
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import NamedTuple, NoReturn

import msgspec
import trio
import trio_websocket

from protocol.codec import decode_server, encode
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.frames import (
    Auth,
    AuthData,
    ClientFrame,
    Err,
    Hello,
    HelloData,
    Message,
    Ok,
    Ping,
    Pong,
    Send,
    SendData,
    ServerFrame,
    Welcome,
    WelcomeData,
)
from protocol.version import PROTOCOL_VERSION

__all__ = [
    "Client",
    "ClientError",
    "CloseInfo",
    "ConnectionClosed",
    "HandshakeRejected",
    "ServerError",
    "open_client",
]

# RFC 6455 codes: we close with 1002 when the server sends a frame we cannot
# decode; 1006 stands for "closed without a close frame".
_WS_PROTOCOL_ERROR = 1002
_WS_ABNORMAL = 1006
_MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes

DEFAULT_PUSH_BUFFER = 10_000


class CloseInfo(NamedTuple):
    """How the connection ended: the close code and reason text.

    When the server closed, these are its code and reason; when we closed,
    ours; 1006 when the socket died without a close frame.
    """

    code: int
    reason: str


class ClientError(Exception):
    """Base of the errors raised by this client (beyond ProtocolError and timeouts)."""


class ServerError(ClientError):
    """The server answered a request with ``err``."""

    def __init__(self, code: str, msg: str, re: int | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.re = re


class ConnectionClosed(ClientError):
    """The socket is gone: raised by pending and new requests and by drained next_push."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"connection closed with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason

    @property
    def info(self) -> CloseInfo:
        return CloseInfo(self.code, self.reason)


class HandshakeRejected(ConnectionClosed):
    """The server closed the socket instead of answering ``hello`` with ``welcome``."""


class _Waiter:
    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: ServerFrame | None = None  # None once woken: the connection closed


class Client:
    """One session on ``/ws``. Get one from ``open_client``; every method is task-safe."""

    welcome: WelcomeData

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        *,
        request_timeout: float,
        push_buffer: int = DEFAULT_PUSH_BUFFER,
    ) -> None:
        self._ws = ws
        self._request_timeout = request_timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, _Waiter] = {}
        self._push_send, self._push_recv = trio.open_memory_channel[ServerFrame](push_buffer)
        # Created here, entered by the reader: aclose() can cancel a reader
        # that has not started yet and it will still run its cleanup.
        self._reader_scope = trio.CancelScope()
        self._closed = trio.Event()
        self._close_info: CloseInfo | None = None

    @property
    def close_info(self) -> CloseInfo | None:
        """Set once the connection has ended (see ``CloseInfo``); None while open."""
        return self._close_info

    # ----- requests -------------------------------------------------------

    async def request(self, frame: ClientFrame) -> ServerFrame:
        """Send ``frame`` under a fresh request id and return the reply.

        The frame's own ``id`` is replaced, so build it with ``id=0``. Raises
        ``ServerError`` for ``err``, ``ConnectionClosed`` if the socket closes
        first, ``trio.TooSlowError`` after the client's ``request_timeout``
        (wrap the call in ``trio.fail_after`` for a shorter one).
        """
        if self._closed.is_set():
            raise self._closed_error()
        rid = next(self._ids)
        waiter = _Waiter()
        self._pending[rid] = waiter
        try:
            with trio.fail_after(self._request_timeout):
                await self._send(encode(msgspec.structs.replace(frame, id=rid)))
                await waiter.done.wait()
        finally:
            # On timeout or cancellation a late reply then lands in the pushes.
            self._pending.pop(rid, None)
        reply = waiter.reply
        if reply is None:
            raise self._closed_error()
        if isinstance(reply, Err):
            raise ServerError(reply.code, reply.msg, reply.re)
        return reply

    async def send_message(self, room: str, text: str, cid: str | None = None) -> Message:
        """Post ``text`` to ``room``; returns the message once durably stored.

        Pass the same ``cid`` again to retry safely: the server returns the
        original message instead of storing a duplicate.
        """
        cid = uuid.uuid4().hex if cid is None else cid
        reply = await self.request(Send(id=0, d=SendData(room=room, cid=cid, text=text)))
        if not isinstance(reply, Ok) or reply.d is None:
            raise _unexpected("msg.send", reply)
        return reply.d

    async def authenticate(self, token: str) -> None:
        """Hand the open session a fresh access token (``auth``) before the
        current one expires; without it the server closes with 4004
        (ACCESS_EXPIRED) at expiry. ``token`` must be for the same user and
        device session (refresh over REST: same session). Raises
        ``ServerError`` (``token_expired``, ``unauthorized``, ``forbidden``)."""
        reply = await self.request(Auth(id=0, d=AuthData(token=token)))
        if not isinstance(reply, Ok):
            raise _unexpected("auth", reply)

    async def ping(self) -> int:
        """Round trip through the server's frame loop; returns its clock (ms since epoch)."""
        reply = await self.request(Ping(id=0))
        if not isinstance(reply, Pong):
            raise _unexpected("ping", reply)
        return reply.ts

    async def send_raw(self, data: bytes | str) -> None:
        """Send one WebSocket message as is (str goes as a text message): for bad-input tests."""
        await self._send(data)

    # ----- pushes ----------------------------------------------------------

    # A timeout parameter is un-trio-like, but tests and the harness read
    # pushes with a deadline on nearly every call.
    async def next_push(self, timeout: float | None = None) -> ServerFrame:  # noqa: ASYNC109
        """The next frame that is not a reply to a pending request.

        Raises ``trio.TooSlowError`` after ``timeout`` seconds (None: wait
        forever) and ``ConnectionClosed`` once the connection has ended and
        every buffered push has been returned.
        """
        try:
            if timeout is None:
                return await self._push_recv.receive()
            with trio.fail_after(timeout):
                return await self._push_recv.receive()
        except trio.EndOfChannel:
            raise self._closed_error() from None

    def next_push_nowait(self) -> ServerFrame:
        """Like ``next_push`` but raises ``trio.WouldBlock`` when nothing is buffered."""
        try:
            return self._push_recv.receive_nowait()
        except trio.EndOfChannel:
            raise self._closed_error() from None

    # ----- closing ---------------------------------------------------------

    async def wait_closed(self) -> CloseInfo:
        """Wait until the connection has ended, whoever ended it."""
        await self._closed.wait()
        assert self._close_info is not None
        return self._close_info

    async def aclose(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close with ``code`` (bounded by the request timeout). Idempotent."""
        if self._closed.is_set():
            return
        await self._close(code, reason)
        self._reader_scope.cancel()
        await self._closed.wait()

    # ----- internals -------------------------------------------------------

    async def _handshake(self, hello: HelloData) -> None:
        hello_id = next(self._ids)
        refusal = ""  # an err the server may send before closing
        try:
            await self._ws.send_message(encode(Hello(id=hello_id, d=hello)))
            while True:
                frame = await self._decode_or_close(await self._ws.get_message())
                match frame:
                    case Welcome(re=re, d=welcome) if re == hello_id:
                        self.welcome = welcome
                        return
                    case Err(code=err_code, msg=msg):
                        refusal = f"{err_code}: {msg}"
                    case _:
                        await self._close(_WS_PROTOCOL_ERROR, "expected welcome")
                        raise ProtocolError(
                            ErrorCode.BAD_FRAME, f"expected 'welcome' first, got {frame!r}"
                        )
        except trio_websocket.ConnectionClosed as exc:
            code, reason = _info_of(exc.reason)
            raise HandshakeRejected(code, reason or refusal) from None

    async def _read_frames(self) -> None:
        try:
            with self._reader_scope:
                while True:
                    try:
                        data = await self._ws.get_message()
                    except trio_websocket.ConnectionClosed as exc:
                        if self._close_info is None:
                            self._close_info = _info_of(exc.reason)
                        return
                    try:
                        frame = await self._decode_or_close(data)
                    except ProtocolError:
                        return
                    await self._route(frame)
        finally:
            self._finish()

    async def _route(self, frame: ServerFrame) -> None:
        # Duck-typed on purpose: any reply type added later carries ``re`` too.
        re = getattr(frame, "re", None)
        if re is not None:
            waiter = self._pending.pop(re, None)
            if waiter is not None:
                waiter.reply = frame
                waiter.done.set()
                return
        await self._push_send.send(frame)

    async def _decode_or_close(self, data: bytes | str) -> ServerFrame:
        try:
            return decode_server(data)
        except ProtocolError as exc:
            # Loud and final: a server that sends garbage fails every request
            # with ConnectionClosed(1002, why) instead of hanging them.
            await self._close(_WS_PROTOCOL_ERROR, exc.message)
            raise

    def _finish(self) -> None:
        """Reader's end, synchronous so that cancellation cannot skip any of it."""
        if self._close_info is None:
            self._close_info = _info_of(self._ws.closed)
        for waiter in self._pending.values():
            waiter.done.set()
        self._pending.clear()
        self._push_send.close()
        self._closed.set()

    async def _close(self, code: int, reason: str) -> None:
        # trio-websocket reports 1000 for any close we start: remember our own.
        if self._close_info is None and self._ws.closed is None:
            self._close_info = CloseInfo(code, reason)
        with trio.move_on_after(self._request_timeout):
            await self._ws.aclose(int(code), _clip(reason) or None)

    async def _send(self, data: bytes | str) -> None:
        try:
            await self._ws.send_message(data)
        except trio_websocket.ConnectionClosed:
            raise self._closed_error() from None

    def _closed_error(self) -> ConnectionClosed:
        # The reader may still be draining frames the server sent before its
        # close; the socket already knows the code.
        return ConnectionClosed(*(self._close_info or _info_of(self._ws.closed)))


@asynccontextmanager
async def open_client(
    url: str,
    token: str,
    *,
    device: str = "default",
    cursors: dict[str, int] | None = None,
    evs: dict[str, int] | None = None,
    version: int = PROTOCOL_VERSION,
    request_timeout: float = 10.0,
    push_buffer: int = DEFAULT_PUSH_BUFFER,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Client]:
    """Connect to ``url`` (``ws://host:port/ws``), say hello, yield once welcomed.

    Replayed ``msg.new``/``resume.gap`` frames and the one ``resume.done``
    that follow ``welcome`` arrive through ``next_push``. Raises
    ``HandshakeRejected`` if the server closes instead of welcoming,
    ``trio.TooSlowError`` if connecting and the handshake take longer than
    ``request_timeout``, ``OSError`` or trio-websocket's ``HandshakeError``
    if the socket or the HTTP upgrade fails. Leaving the block closes with 1000.
    """
    hello = HelloData(
        token=token, v=version, device=device, cursors=dict(cursors or {}), evs=dict(evs or {})
    )
    host, port, host_header, resource, tls = _parse_url(url, ssl_context)
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(request_timeout):
                stream = await _open_stream(host, port, tls)
            try:
                with trio.fail_after(request_timeout):
                    ws = await trio_websocket.wrap_client_stream(
                        nursery, stream, host_header, resource
                    )
                    client = Client(ws, request_timeout=request_timeout, push_buffer=push_buffer)
                    await client._handshake(hello)
                nursery.start_soon(client._read_frames)
                try:
                    yield client
                finally:
                    await client.aclose()
            finally:
                # trio-websocket leaves the TCP stream open when the server
                # closed first: close it ourselves, without waiting. Shielded:
                # a Cancelled raised here would replace the error in flight
                # (HandshakeRejected, the body's) and die in our nursery.
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Our reader never raises and trio-websocket's raises only while
        # connecting, so a group holds one real error (the body's, or the
        # handshake's) beside Cancelled: raise it bare, so callers can write
        # ``pytest.raises(HandshakeRejected)`` around the block.
        _, rest = group.split(trio.Cancelled)
        errors = list(_leaves(rest)) if rest is not None else []
        if len(errors) != 1:
            raise
        _reraise(errors[0])


# ----- helpers ---------------------------------------------------------------


def _info_of(reason: trio_websocket.CloseReason | None) -> CloseInfo:
    if reason is None:
        return CloseInfo(_WS_ABNORMAL, "")
    return CloseInfo(reason.code, reason.reason or "")


def _unexpected(kind: str, reply: ServerFrame) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FRAME, f"{kind!r} answered by {reply!r}")


def _clip(reason: str) -> str:
    return reason.encode()[:_MAX_REASON_BYTES].decode(errors="ignore")


def _parse_url(
    url: str, ssl_context: ssl.SSLContext | None
) -> tuple[str, int, str, str, ssl.SSLContext | None]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    tls = (ssl_context or ssl.create_default_context()) if parts.scheme == "wss" else None
    port = parts.port or (443 if tls else 80)
    host_header = parts.netloc.rpartition("@")[2]  # as given, [IPv6] brackets included
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, host_header, resource, tls


async def _open_stream(
    host: str, port: int, tls: ssl.SSLContext | None
) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    if tls is None:
        return await trio.open_tcp_stream(host, port)
    return await trio.open_ssl_over_tcp_stream(host, port, ssl_context=tls, https_compatible=True)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _reraise(exc: BaseException) -> NoReturn:
    # Raising inside ``except`` would chain the group (which contains exc)
    # as exc's context; keep the context it had.
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context
