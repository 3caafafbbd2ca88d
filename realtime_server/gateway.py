"""The WebSocket gateway: one task tree per connection, on wsproto.

Per connection::

    handle()                       reads frames, dispatches them
    └── session.serve_writer()     the only writer of the socket; calls _beat()
                                   every HEARTBEAT_INTERVAL: ping, or close a
                                   silent peer with 4001

Handshake: the WebSocket upgrade, then the first frame must be ``hello``
(token, version, device, cursors) within HELLO_TIMEOUT; anything else closes
with a terminal code (4100-4199). After ``welcome`` the session replays what
each cursor missed, sends ``resume.done`` and only then releases live traffic.

The gateway never touches SQL: rooms are reached through their actors.
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request

from actors.errors import ActorError
from actors.room import ROOM, Replay, ReplayResult
from actors.room_changes import EV_KEY
from actors.runtime import ActorSystem
from bridge.http.cors import ws_origin_allowed
from protocol import codec, frames
from protocol.errors import CLOSE_REASONS, CloseCode, ErrorCode, ProtocolError
from protocol.version import PROTOCOL_VERSION, SUPPORTED_VERSIONS
from realtime_server.base import metrics
from realtime_server.base.settings import Settings
from realtime_server.dispatch import Dispatcher, FrameContext
from realtime_server.hub import Hub
from realtime_server.services import NodeServices
from realtime_server.session import Session, SessionInfo
from realtime_server.wsframes import CLOSE, DATA, PING, ServerFrames, binary_frame
from storage.presence import presence_store

log = logging.getLogger(__name__)

RECEIVE_SIZE = 65536
# Seconds a closed connection keeps discarding what the peer still sends (_linger).
LINGER = 2.0
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")


class Claims(Protocol):
    """What the gateway reads of a verified access token (bridge.accounts.tokens.AccessClaims)."""

    @property
    def user_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...


class TokenVerifier(Protocol):
    """What the gateway needs of bridge.accounts.tokens.TokenService (kept structural)."""

    def verify_access(self, token: str) -> Claims: ...


class _Closed(Exception):
    """The peer closed or vanished; unwinds the connection's reader."""


@dataclass(slots=True, eq=False)
class _Conn:
    stream: trio.SocketStream
    # The frame protocol once the upgrade is accepted (wsproto does only the upgrade).
    ws: ServerFrames
    max_frame: int
    session: Session | None = None
    last_rx: float = 0.0
    # Fragments of the message being received, and whether it went over the limit.
    parts: list[bytes | bytearray] | None = None
    size: int = 0
    oversize: bool = False
    # Set only while the reader waits for bytes: begin_drain() cancels that
    # wait, never a handler at work.
    read_scope: trio.CancelScope | None = None


class Gateway:
    def __init__(
        self,
        settings: Settings,
        system: ActorSystem,
        hub: Hub,
        tokens: TokenVerifier,
        dispatcher: Dispatcher,
        services: NodeServices,
    ) -> None:
        self.settings = settings
        self.system = system
        self.hub = hub
        self.tokens = tokens
        self.dispatcher = dispatcher
        # Node services handlers may need (store, writer, ...).
        self.services = services
        # The node's clock (realtime_server.base.clock), the one tokens are issued on.
        self._now_ms: Callable[[], int] = services.clock
        self._conn_ids = itertools.count(1)
        self._conns: set[_Conn] = set()
        self._all_closed = trio.Event()
        # A draining shutdown: read no more frames, accept no more sessions.
        self.draining = False
        self._in_handlers = 0

    @property
    def connections(self) -> int:
        return len(self._conns)

    @property
    def handling(self) -> int:
        """Frames being handled right now (a draining shutdown waits for them)."""
        return self._in_handlers

    def begin_drain(self) -> None:
        """Stop reading frames: each connection finishes the frame in hand and
        then waits for the node to close its session (``close_all``)."""
        self.draining = True
        for conn in self._conns:
            if conn.read_scope is not None:
                conn.read_scope.cancel()

    async def wait_all_closed(self) -> None:
        while self._conns:
            self._all_closed = trio.Event()
            await self._all_closed.wait()

    # ----- entry -----------------------------------------------------------------

    async def handle(self, stream: trio.SocketStream, initial: bytes) -> None:
        """Serve one upgraded connection; ``initial`` is what was read so far."""
        ws = WSConnection(ConnectionType.SERVER)
        ws.receive_data(initial)
        # Bytes after the request head are the client's first frames (a
        # client may send hello without waiting for our answer).
        end = initial.find(b"\r\n\r\n")
        trailing = initial[end + 4 :] if end >= 0 else b""
        del initial
        request = next(ws.events(), None)
        if not isinstance(request, Request):
            await _send_quietly(stream, ws.send(RejectConnection(status_code=400)))
            return
        origin = next((v for k, v in request.extra_headers if k.lower() == b"origin"), None)
        if not ws_origin_allowed(self.settings, origin, request.host):  # CORS_ORIGINS
            await _send_quietly(stream, ws.send(RejectConnection(status_code=403)))
            return
        accepted = False
        with trio.move_on_after(self.settings.hello_timeout):
            # A peer that does not read even the upgrade answer is not waited for.
            await stream.send_all(ws.send(AcceptConnection()))
            accepted = True
        if not accepted:
            await trio.aclose_forcefully(stream)
            return
        # Past the upgrade only the frame protocol is needed. Dropping the
        # HTTP handshake (h11 state, request headers) saves ~2.7 KB of every
        # idle connection (README "Performance", connections scenario).
        conn = _Conn(
            stream,
            ServerFrames(trailing),
            self.settings.max_frame_bytes,
            last_rx=trio.current_time(),
        )
        del ws, request, trailing
        self._conns.add(conn)
        metrics.connection_opened()
        try:
            await self._serve(conn)
        except _Closed:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            if conn.session is not None:
                self.hub.remove(conn.session)
                self._session_ended(conn.session)
            with trio.CancelScope(shield=True):
                await _linger(stream)
                self._conns.discard(conn)
                if not self._conns:
                    self._all_closed.set()
                await stream.aclose()

    async def _serve(self, conn: _Conn) -> None:
        hello = await self._receive_hello(conn)
        if hello is None:
            return
        if self.draining:
            await self._reject(conn, CloseCode.GOING_AWAY, CLOSE_REASONS[CloseCode.GOING_AWAY])
            return
        claims, data = hello
        plan = await self._plan_info(claims.user_id)
        info = SessionInfo(
            user_id=claims.user_id,
            session_id=claims.session_id,
            device=data.d.device,
            conn_id=next(self._conn_ids),
        )
        session = conn.session = Session(
            info,
            conn.stream,
            self.settings.outbound_queue_bytes,
            # Bound to the frame protocol, not to ``conn``: conn -> session ->
            # closure -> conn would be a reference cycle per connection, which
            # with serve's GC tuning lingers until a rare full collection.
            close_frame_for=partial(_close_frame, conn.ws),
            raw_socket=socket.socket(fileno=conn.stream.socket.fileno()),
            close_timeout=self.settings.close_timeout,
        )
        self._set_expiry(session, claims)
        async with trio.open_nursery() as nursery:

            async def write_then_stop() -> None:
                await session.serve_writer(
                    partial(self._beat, conn, session), self.settings.heartbeat_interval
                )
                nursery.cancel_scope.cancel()

            nursery.start_soon(write_then_stop)
            # Registered before the replay asks: live events from now on are
            # held, and anything both held and replayed is sent once.
            self.hub.add(session)
            users = self.services.users
            if users is not None:
                # Several nodes: what another node sends this user from now on
                # (after welcome) reaches this session (bounded wait, issue 13).
                await users.ready(session.user_id, self.settings.ask_timeout)
            cluster_rooms = self.services.cluster_rooms
            if cluster_rooms is not None:
                # Several nodes: listening on the user's rooms before any replay.
                await cluster_rooms.ready(session.user_id)
            # Memory only; broadcasts in background.
            self.services.presence.session_up(session.user_id)
            s = self.settings
            session.push_frame(
                frames.Welcome(
                    re=data.id,
                    d=frames.WelcomeData(
                        user=info.user_id,
                        session=info.session_id,
                        v=data.d.v,
                        heartbeat=s.heartbeat_interval,
                        max_frame=s.max_frame_bytes,
                        max_text=s.max_message_chars,
                        ts=self._now_ms(),
                        plan=plan,
                    ),
                )
            )
            # The hello (its token above all) is not kept for the connection's life.
            cursors, evs = data.d.cursors, data.d.evs
            del hello, claims, data, plan
            try:
                await self._resume(session, cursors, evs)
                del cursors, evs
                await self._read_loop(conn, session)
            except (_Closed, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            if self.draining and session.close_code is None:
                # The node closes the session (what is queued, acks included,
                # goes out first) once in-flight work has been answered.
                await session.closed.wait()
            elif session.close_code is not None:
                # The writer puts our close frame on the wire (bounded by CLOSE_TIMEOUT).
                with trio.move_on_after(self.settings.close_timeout + 1):
                    await session.closed.wait()
            nursery.cancel_scope.cancel()

    async def _plan_info(self, user_id: str) -> frames.PlanInfo | None:
        """The user's plan and AI quota for ``welcome``, from billing when the node has it.

        Billing trouble never refuses a connection: the welcome goes without it.
        """
        quota = self.services.quota
        try:
            with trio.move_on_after(self.settings.ask_timeout):
                summary = await quota.summary(user_id)
                return summary.to_frame()
        except Exception:
            log.warning("welcome without plan info: the quota summary failed", exc_info=True)
        return None

    # ----- reading -----------------------------------------------------------------

    async def _next_message(self, conn: _Conn) -> bytes | bytearray | ProtocolError:
        """The next complete client message, or the error it earned."""
        ws = conn.ws
        while True:
            while (event := ws.next_event()) is not None:
                kind = event[0]
                if kind == DATA:
                    done = self._collect(conn, event[1], event[2], event[3])
                    if done is not None:
                        return done
                elif kind == PING:
                    pong = ws.pong(event[1])
                    if pong:
                        await self._send_control(conn, pong)
                elif kind == CLOSE:
                    # The peer's close, or its protocol error (code and reason
                    # said back, as RFC 6455 section 7.1.7 has it).
                    reply = ws.close(event[1], event[2])
                    if conn.session is not None:
                        conn.session.close(CloseCode.NORMAL, reply)
                    elif reply:
                        await _send_quietly(conn.stream, reply)
                    raise _Closed
                # PONG: nothing to do (any byte received counts as life, below).
            if self.draining:
                raise _Closed
            data = b""
            with trio.CancelScope() as conn.read_scope:
                data = await conn.stream.receive_some(RECEIVE_SIZE)
            conn.read_scope = None
            if not data:  # EOF, or begin_drain() stopped the wait
                raise _Closed
            conn.last_rx = trio.current_time()
            ws.receive_data(data)

    def _collect(
        self, conn: _Conn, chunk: bytes, text: bool, finished: bool
    ) -> bytes | bytearray | ProtocolError | None:
        if conn.parts is None:
            if finished and len(chunk) <= conn.max_frame and not text:
                return chunk  # the usual case: a whole binary message in one frame
            conn.parts, conn.size, conn.oversize = [], 0, False
        conn.size += len(chunk)
        if conn.size > conn.max_frame:
            # Keep reading to the end of the message but keep none of it.
            conn.oversize = True
            conn.parts.clear()
        elif not conn.oversize:
            conn.parts.append(chunk)
        if not finished:
            return None
        parts, size, oversize = conn.parts, conn.size, conn.oversize
        conn.parts = None
        if oversize:
            return ProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"Frame of {size} bytes is over the limit of {conn.max_frame} bytes.",
            )
        if text:
            return ProtocolError(
                ErrorCode.BAD_FRAME, "Frames must be binary MessagePack, not text."
            )
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _send_control(self, conn: _Conn, data: bytes) -> None:
        if conn.session is not None:
            conn.session.push(data)
        else:
            await conn.stream.send_all(data)

    async def _receive_hello(self, conn: _Conn) -> tuple[Claims, frames.Hello] | None:
        with trio.move_on_after(self.settings.hello_timeout):
            raw = await self._next_message(conn)
            if isinstance(raw, ProtocolError):
                await self._reject(conn, CloseCode.PROTOCOL_VIOLATION, raw.message)
                return None
            try:
                frame = codec.decode_client(raw, conn.max_frame)
            except ProtocolError as exc:
                await self._reject(conn, CloseCode.PROTOCOL_VIOLATION, exc.message)
                return None
            metrics.frame_in(frame)
            if not isinstance(frame, frames.Hello):
                await self._reject(
                    conn, CloseCode.PROTOCOL_VIOLATION, "The first frame must be hello."
                )
                return None
            if _CONTROL_CHARS.search(frame.d.device):
                # The schema's pattern cannot refuse a trailing newline ("$"
                # matches before one): checked here once more, exactly.
                await self._reject(
                    conn,
                    CloseCode.PROTOCOL_VIOLATION,
                    "Invalid 'hello' frame: the device name holds a control character.",
                )
                return None
            if frame.d.v not in SUPPORTED_VERSIONS:
                await self._reject(
                    conn,
                    CloseCode.UNSUPPORTED_VERSION,
                    f"Protocol version {frame.d.v} is not supported; "
                    f"this server speaks {PROTOCOL_VERSION}.",
                )
                return None
            try:
                claims = self.tokens.verify_access(frame.d.token)
            except Exception as exc:  # bridge.accounts.tokens.AuthError and kin
                code = getattr(exc, "code", ErrorCode.UNAUTHORIZED)
                close = (
                    CloseCode.TOKEN_EXPIRED
                    if code == ErrorCode.TOKEN_EXPIRED
                    else CloseCode.UNAUTHORIZED
                )
                await self._reject(conn, close, CLOSE_REASONS[close])
                return None
            return claims, frame
        await self._reject(conn, CloseCode.HELLO_TIMEOUT, CLOSE_REASONS[CloseCode.HELLO_TIMEOUT])
        return None

    async def _reject(self, conn: _Conn, code: CloseCode, reason: str) -> None:
        data = conn.ws.close(int(code), _clip_reason(reason))
        if data:
            await _send_quietly(conn.stream, data)

    async def _read_loop(self, conn: _Conn, session: Session) -> None:
        max_frame = conn.max_frame
        ctx = FrameContext(session, self.settings, self.system, self.hub, self.services)
        handler_for = self.dispatcher.handler_for
        frame_in = metrics.frame_in
        # Token bucket over every frame this connection sends: a flooding client
        # is told to slow down and costs the rooms nothing.
        rate = self.settings.rate_limit_frames_per_second
        burst = float(max(1, self.settings.rate_limit_burst))
        tokens, last = burst, trio.current_time()
        while True:
            raw = await self._next_message(conn)
            if isinstance(raw, ProtocolError):
                session.push_error(raw.code, raw.message, raw.re)
                continue
            try:
                frame = codec.decode_client(raw, max_frame)
            except ProtocolError as exc:
                session.push_error(exc.code, exc.message, exc.re)
                continue
            if rate > 0:
                now = trio.current_time()
                tokens = min(burst, tokens + (now - last) * rate)
                last = now
                if tokens < 1:
                    session.push_error(
                        ErrorCode.RATE_LIMITED,
                        f"More than {rate:g} frames per second; slow down.",
                        getattr(frame, "id", None),
                    )
                    continue
                tokens -= 1
            frame_in(frame)
            if isinstance(frame, frames.Auth):
                self._reauthorize(session, frame)
                continue
            handler = handler_for(frame)
            if handler is None:
                session.push_error(
                    ErrorCode.UNKNOWN_TYPE,
                    f"This server does not handle {type(frame).__name__}.",
                    getattr(frame, "id", None),
                )
                continue
            self._in_handlers += 1
            try:
                await handler(ctx, frame)
            finally:
                self._in_handlers -= 1

    def _reauthorize(self, session: Session, frame: frames.Auth) -> None:
        """``auth``: a fresh access token for this very session extends its life."""
        try:
            claims = self.tokens.verify_access(frame.d.token)
        except Exception as exc:  # bridge.accounts.tokens.AuthError and kin
            code = getattr(exc, "code", ErrorCode.UNAUTHORIZED)
            code = (
                ErrorCode.TOKEN_EXPIRED
                if code == ErrorCode.TOKEN_EXPIRED
                else (ErrorCode.UNAUTHORIZED)
            )
            session.push_error(code, getattr(exc, "message", None), frame.id)
            return
        if (
            getattr(claims, "user_id", None) != session.user_id
            or getattr(claims, "session_id", None) != session.info.session_id
        ):
            session.push_error(
                ErrorCode.FORBIDDEN,
                "This token belongs to another user or device session; reconnect to use it.",
                frame.id,
            )
            return
        self._set_expiry(session, claims)
        session.push_frame(frames.Ok(re=frame.id))

    def _set_expiry(self, session: Session, claims: object) -> None:
        expires_at = getattr(claims, "expires_at", None)  # ms since the Unix epoch
        if isinstance(expires_at, int):
            # What is left of the token on the node's clock becomes a timer in
            # the session's writer (trio time: no task per connection).
            session.reauthorize((expires_at - self._now_ms()) / 1000)

    # ----- resume and heartbeat ------------------------------------------------

    async def _resume(
        self, session: Session, cursors: dict[str, int], evs: dict[str, int] | None = None
    ) -> None:
        evs = evs or {}
        sent: dict[str, int] = {}
        sent_evs: dict[str, int] = {}
        readable = await self._member_rooms(session.user_id, list(cursors))
        for room, after in cursors.items():
            if readable is not None and room not in readable:
                # Unknown or not ours: refused from one batched lookup, without
                # waking (or spawning) a room actor per name.
                session.push_error(
                    ErrorCode.NOT_MEMBER,
                    f"resume of room {room}: you are not a member of this room "
                    "(or it does not exist).",
                )
                continue
            try:
                result: ReplayResult = await self.system.ref(ROOM, room).ask(
                    Replay(session.user_id, after, evs.get(room))
                )
            except ActorError as exc:
                session.push_error(exc.code, f"resume of room {room}: {exc.message}")
                continue
            sent_evs[room] = result.last_ev
            if result.truncated or result.events_truncated:
                # Either log too long to replay: the client reloads history
                # (current state, edits and deletes included) over REST.
                session.push_frame(
                    frames.ResumeGap(
                        d=frames.ResumeGapData(
                            room=room,
                            after=after,
                            last_seq=result.last_seq,
                            changes=result.events_truncated,
                            last_ev=result.last_ev,
                        )
                    )
                )
                sent[room] = result.last_seq
                continue
            pace = self.settings.outbound_queue_bytes // 4
            for message in result.messages:
                session.push_frame(frames.MsgNew(d=message))
                if session.queued_bytes > pace:
                    await session.wait_queue_below(pace)
                    if session.close_code is not None:
                        return
            # Clamped like a read receipt: a cursor past the room's end would
            # otherwise make the client (and the dedup below) skip what comes next.
            sent[room] = result.messages[-1].seq if result.messages else min(after, result.last_seq)
            # Change events after the messages: an edit never precedes its message.
            for event in result.events:
                session.push(binary_frame(event))
                if session.queued_bytes > pace:
                    await session.wait_queue_below(pace)
                    if session.close_code is not None:
                        return
        session.push_frame(frames.ResumeDone(d=frames.ResumeDoneData(rooms=sent, evs=sent_evs)))
        # Held live change events are deduplicated by ev under their own key.
        session.finish_sync({**sent, **{room + EV_KEY: ev for room, ev in sent_evs.items()}})

    async def _member_rooms(self, user_id: str, rooms: list[str]) -> set[str] | None:
        """Which of ``rooms`` the user belongs to, in one query; None if unknown
        (no store, or storage failed: then each room actor answers for itself)."""
        store = self.services.store
        if not rooms:
            return None
        try:
            with trio.move_on_after(self.settings.ask_timeout):
                return await presence_store(store).member_rooms(user_id, rooms)
        except Exception:
            log.warning("resume: the batched membership lookup failed", exc_info=True)
        return None

    def _beat(self, conn: _Conn, session: Session) -> None:
        """Every HEARTBEAT_INTERVAL, from the session's writer: ping, or close a silent peer."""
        s = self.settings
        if trio.current_time() - conn.last_rx > s.heartbeat_interval + s.heartbeat_timeout:
            session.close(CloseCode.HEARTBEAT_TIMEOUT)
            return
        data = conn.ws.ping(b"hb")
        if data:
            session.push(data)

    def _session_ended(self, session: Session) -> None:
        # Both hooks are synchronous and memory-only: a disconnect storm must
        # not wait on storage. Typing clears now; presence after its grace.
        self.services.typing.session_closed(session)
        self.services.presence.session_closed(session)

    def close_all(self, code: CloseCode, *, flush: bool = False) -> None:
        """Used at shutdown: every session gets a close frame with ``code``
        (after what is queued for it, with ``flush``)."""
        for conn in list(self._conns):
            if conn.session is not None:
                conn.session.close(code, flush=flush)


def _close_frame(ws: ServerFrames, code: CloseCode) -> bytes:
    return ws.close(int(code), _clip_reason(CLOSE_REASONS[code]))


async def _send_quietly(stream: trio.SocketStream, data: bytes) -> None:
    with trio.move_on_after(2):
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _linger(stream: trio.SocketStream) -> None:
    """Close our side, then discard what the peer still sends, briefly.

    Closing a socket with unread bytes in it (a client's pipelined requests
    after we stopped reading) makes the kernel send a reset, and a reset can
    destroy what the peer had not read yet: our last acks and the close
    frame. Ending with EOF first lets the peer read everything we sent.
    """
    with trio.move_on_after(LINGER):
        try:
            await stream.send_eof()
            while await stream.receive_some(RECEIVE_SIZE):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            pass


def _clip_reason(reason: str) -> str:
    # A close frame's reason is at most 123 bytes of UTF-8.
    data = reason.encode()[:123]
    return data.decode(errors="ignore")
