"""The Redis twin of the bus (issue 13): Redis pub/sub through coredis, natively on trio.

The contract is ``realtime_server.cluster.bus``'s; how this twin keeps it:

- Two connections: one publishes, one is subscribed. A 1 MB message coming in
  never holds up the replies to what we publish, and the reverse.
- ``publish`` only queues (framed once: a length-prefixed origin, then the
  payload). One task sends everything queued as one pipeline (one write, one
  round trip) and waits for its replies before the next, so a slow Redis
  queues here instead of in the socket. A Redis connection executes in order,
  so each channel's order is kept.
- A node drops what carries its own origin: Redis delivers to the publisher
  too when it listens to the channel.
- ``subscribe``/``unsubscribe`` only mark the channel; a task sends SUBSCRIBE
  and UNSUBSCRIBE for what changed. Redis confirms each subscribed channel in
  order, so counting confirmations tells ``wait_subscribed`` when it is served.
- Down: a dropped connection is seen at once (Redis killed or restarted closes
  the socket); a PING on each connection every 0.5 s catches a Redis that
  hangs or a network that drops packets silently: a connection that receives
  nothing at all for 1 s while its PING waits is down (a busy one may wait
  longer for its PONG: it is behind the messages queued for us). Then
  ``up`` is False, what was queued is dropped (at most once, like a message
  published during the outage), ``publish`` raises ``BusUnavailable``, and the
  bus reconnects with a backoff from 0.1 s doubling to 2 s, subscribes to
  every channel held, waits for Redis to confirm them, sets ``up``, and only
  then runs the ``on_reconnect`` callbacks. One warning when an outage starts,
  one info line when it ends.

Why coredis: measured on trio against the local Redis (see
``realtime_server.cluster.bench_bus`` for what exactly is measured)::

    flock /work/wt/bench.lock python -m realtime_server.cluster.bench_bus \\
        --redis redis://127.0.0.1:6379/0

Figures, 2026-12-02, this 2-core VM shared with other sessions (load average
near 4 just after the run), Redis 7.0 on localhost, 200-byte payloads, median of
3 interleaved rounds in one run::

    client                                        msgs/s   p50 ms   p99 ms  CPU us/msg
    coredis 6.9.0 (RedisBus, native trio)         33,628     0.37     3.39        28.4
    redis-py 8.1.0 asyncio via trio-asyncio       18,625     0.64     4.07        51.2

msgs/s: 50,000 messages, publisher and subscriber in this one process, from
the first publish to the last one handled. Latency: 2,000 messages at
1,000 msgs/s, ``publish`` call to handler call. CPU: this process's CPU time
(both sides) per message. coredis: 1.8x the throughput at 0.55x the CPU, and
lower latency: redis-py pays for the bridge (every pipeline crosses from trio
into the hosted asyncio loop and back) and for its own pub/sub message dicts.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit, urlunsplit

import anyio
import coredis
import coredis.exceptions
import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from realtime_server.cluster.bus import BusUnavailable, Handler, dispatch

if TYPE_CHECKING:
    from coredis.connection import BaseConnection

log = logging.getLogger(__name__)

BACKOFF_MIN = 0.1  # seconds before the first reconnection attempt
BACKOFF_MAX = 2.0  # the longest wait between attempts
PING_EVERY = 0.5  # a connection that answers no PING within PING_TIMEOUT is down
PING_TIMEOUT = 1.0
CONNECT_TIMEOUT = 2.0
MAX_QUEUED_BYTES = 64 * 1024 * 1024  # more waiting to go out: Redis cannot keep up, refuse

_ORIGIN_LENGTH = struct.Struct(">H")


class _ConnectionClosed(Exception):
    """coredis ends a connection's task quietly when an established connection drops."""


# What ends a connection to Redis (and so a session of the bus).
_FAILURES: tuple[type[BaseException], ...] = (
    coredis.exceptions.RedisError,
    OSError,
    trio.TooSlowError,
    TimeoutError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    _ConnectionClosed,
)


def redacted(url: str) -> str:
    """``url`` with its password hidden, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class _QuietRetries(logging.Filter):
    """coredis logs every failed connection attempt (with a traceback); the bus
    logs an outage once when it starts and once when it ends."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in (
            "Connection attempt failed unexpectedly!",
            "Connection closed unexpectedly!",
        )


_quiet = _QuietRetries()


def origin_of(node_key: str) -> bytes:
    """The head of every frame a node publishes: its key, length-prefixed (the payload follows)."""
    key = node_key.encode()
    if len(key) > 0xFFFF:
        raise ValueError(f"node key too long ({len(key)} bytes)")
    return _ORIGIN_LENGTH.pack(len(key)) + key


def unframe(data: bytes) -> bytes | None:
    """The payload of ``data``, or None when it is not a frame of ours."""
    if len(data) < 2:
        return None
    start = 2 + ((data[0] << 8) | data[1])
    if len(data) < start:
        return None
    return data[start:]


class RedisBus:
    """The bus over the Redis of ``url``; ``prefix`` (the deployment's channel
    prefix) only names its connections in ``CLIENT LIST``, with the node key."""

    def __init__(self, url: str, node_key: str, *, prefix: str = "") -> None:
        self.node_key = node_key
        self._url = url
        # Redis takes only '!'..'~' in a client name.
        self._client_name = "".join(
            c if "!" <= c <= "~" else "_" for c in f"{prefix}bus:{node_key}"
        )
        self._origin = origin_of(node_key)
        self._up = False
        self._handlers: dict[str, dict[Handler, int]] = {}
        self._reconnect: list[Callable[[], None]] = []
        # Publishing: what waits for the publisher task.
        self._outbox: list[tuple[str, bytes]] = []
        self._outbox_bytes = 0
        self._outbox_ready = trio.Event()
        # Subscribing: channels whose holding changed since the last SUBSCRIBE/UNSUBSCRIBE.
        self._dirty: set[str] = set()
        self._dirty_ready = trio.Event()
        self._at_broker: set[str] = set()  # what the current connection is subscribed to
        # wait_subscribed: ``_requested`` counts channels newly held; each
        # SUBSCRIBE sent is a batch [channels still unconfirmed, _requested
        # then]; when a batch is all confirmed, ``_confirmed`` takes its count.
        self._requested = 0
        self._confirmed = 0
        self._batches: deque[list[int]] = deque()
        self._changed = trio.Event()  # set (and replaced) on confirmations and up/down
        logging.getLogger("coredis").addFilter(_quiet)

    # ----- the Bus protocol -----

    @property
    def up(self) -> bool:
        return self._up

    def publish(self, channel: str, payload: bytes) -> None:
        if not self._up:
            raise BusUnavailable("the bus is down (Redis unreachable)")
        if self._outbox_bytes > MAX_QUEUED_BYTES:
            raise BusUnavailable("the bus is backed up (Redis does not keep up)")
        data = self._origin + payload
        self._outbox.append((channel, data))
        self._outbox_bytes += len(data)
        self._outbox_ready.set()

    def subscribe(self, channel: str, handler: Handler) -> None:
        held = self._handlers.get(channel)
        if held is None:
            held = self._handlers[channel] = {}
            self._requested += 1
            self._mark(channel)
        held[handler] = held.get(handler, 0) + 1

    def unsubscribe(self, channel: str, handler: Handler) -> None:
        held = self._handlers.get(channel)
        if held is None or handler not in held:
            return
        held[handler] -= 1
        if held[handler] <= 0:
            del held[handler]
        if not held:
            del self._handlers[channel]
            self._mark(channel)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect.append(callback)

    def subscribed(self, channel: str) -> bool:
        return channel in self._handlers

    async def wait_subscribed(self) -> None:
        """Return once Redis confirmed every channel subscribed so far.

        Raises ``BusUnavailable`` when the bus is down (or goes down while
        waiting) rather than waiting for Redis to come back: the caller
        answers ``unavailable`` and the ``on_reconnect`` re-read covers the rest.
        """
        target = self._requested
        while self._confirmed < target:
            if not self._up:
                raise BusUnavailable("the bus is down (Redis unreachable)")
            await self._changed.wait()
        if not self._up:
            raise BusUnavailable("the bus is down (Redis unreachable)")

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        outage_since: float | None = None
        delay = BACKOFF_MIN

        def came_up() -> None:
            nonlocal started, outage_since, delay
            self._set_up(True)
            delay = BACKOFF_MIN
            if not started:
                started = True
                task_status.started()
                return
            if outage_since is not None:
                log.info(
                    "bus: Redis at %s is back after %.1f s; %d channels subscribed again",
                    redacted(self._url),
                    trio.current_time() - outage_since,
                    len(self._at_broker),
                )
                outage_since = None
            for callback in list(self._reconnect):
                try:
                    callback()
                except Exception:
                    log.exception("bus on_reconnect callback failed")

        while True:
            failure: BaseException | None = None
            try:
                await self._session(came_up)
            except* _FAILURES as group:
                failure = _first_leaf(group)
            self._set_up(False)
            self._outbox.clear()
            self._outbox_bytes = 0
            if not started:
                raise BusUnavailable(
                    f"REDIS_URL {redacted(self._url)}: cannot reach Redis ({failure!r})"
                ) from failure
            if outage_since is None:
                outage_since = trio.current_time()
                log.warning(
                    "bus: lost Redis at %s (%r); refusing what needs other nodes, reconnecting",
                    redacted(self._url),
                    failure,
                )
            await trio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    # ----- one connected session -----

    async def _session(self, came_up: Callable[[], None]) -> None:
        """Connect, subscribe to every channel held, come up, and run until a connection fails."""
        async with trio.open_nursery() as nursery:
            # Bounded: a Redis that accepts connections but answers nothing
            # (hung, stopped) must not hold an attempt forever.
            with trio.fail_after(CONNECT_TIMEOUT + PING_TIMEOUT):
                pub = await nursery.start(self._connection, "pub")
                sub = await nursery.start(self._connection, "sub")
                nursery.start_soon(self._receive, sub)
                self._at_broker = set()
                self._batches.clear()
                self._dirty = set(self._handlers)
                self._flush_subscriptions(sub)
                while self._batches:
                    await self._changed.wait()
            nursery.start_soon(self._publisher, pub)
            nursery.start_soon(self._subscriber, sub)
            nursery.start_soon(self._health, pub)
            nursery.start_soon(self._health, sub)
            came_up()
        raise _ConnectionClosed("the bus session ended")  # only its tasks failing ends it

    async def _connection(
        self, role: str, *, task_status: trio.TaskStatus[BaseConnection] = trio.TASK_STATUS_IGNORED
    ) -> None:
        # The pool only parses the URL (scheme, host, db, password, TLS): the
        # bus holds its two connections itself, for their whole life.
        pool = coredis.ConnectionPool.from_url(self._url)
        kwargs = pool.connection_kwargs.copy()
        kwargs.pop("processing_budget", None)  # the pool's, shared: each connection its own
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
        kwargs["client_name"] = f"{self._client_name}:{role}"
        make = cast(Callable[..., "BaseConnection"], pool.connection_class)
        conn = make(pool.location, **kwargs)
        try:
            # run() returns quietly when an established connection drops.
            async with trio.open_nursery() as nursery:
                await nursery.start(conn.run)
                task_status.started(conn)
        finally:
            _close_buffers(conn)
        raise _ConnectionClosed(f"the {role} connection to Redis closed")

    async def _publisher(self, pub: BaseConnection) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready = trio.Event()
            batch, self._outbox, self._outbox_bytes = self._outbox, [], 0
            last = None
            for channel, data in batch:
                last = pub.create_request(b"PUBLISH", channel, data, decode=False)
            if last is not None:
                await last  # replies come in order: the last one answers for the pipeline

    async def _subscriber(self, sub: BaseConnection) -> None:
        while True:
            await self._dirty_ready.wait()
            self._flush_subscriptions(sub)

    def _mark(self, channel: str) -> None:
        self._dirty.add(channel)
        self._dirty_ready.set()

    def _flush_subscriptions(self, sub: BaseConnection) -> None:
        self._dirty_ready = trio.Event()
        dirty, self._dirty = self._dirty, set()
        add = [c for c in dirty if c in self._handlers and c not in self._at_broker]
        drop = [c for c in dirty if c not in self._handlers and c in self._at_broker]
        if drop:
            sub.send_command(b"UNSUBSCRIBE", *drop)
            self._at_broker.difference_update(drop)
        if add:
            sub.send_command(b"SUBSCRIBE", *add)
            self._at_broker.update(add)
        self._batches.append([len(add), self._requested])
        self._settle()

    def _settle(self) -> None:
        batches = self._batches
        settled = False
        while batches and batches[0][0] <= 0:
            self._confirmed = max(self._confirmed, batches.popleft()[1])
            settled = True
        if settled:
            self._signal()

    async def _receive(self, sub: BaseConnection) -> None:
        """Hand each message to its handlers, in this task (the contract's "bus task")."""
        own = self._origin
        handlers = self._handlers
        async for push in sub.push_messages:
            kind = push[0]
            if kind == b"message":
                data = push[2]
                assert isinstance(data, bytes)
                if data.startswith(own):
                    continue  # ours: delivered locally when published
                payload = unframe(data)
                channel = push[1].decode() if isinstance(push[1], bytes) else str(push[1])
                if payload is None:
                    log.warning("bus: dropped a message on %s that is not a bus frame", channel)
                    continue
                dispatch(handlers.get(channel), channel, payload)
            elif kind == b"subscribe":
                if self._batches:
                    self._batches[0][0] -= 1
                    self._settle()
        raise _ConnectionClosed("the subscribed connection to Redis closed")

    async def _health(self, conn: BaseConnection) -> None:
        """Raise when ``conn`` has received nothing for PING_TIMEOUT while a PING waits.

        A PONG comes after whatever Redis had queued for us first: under load,
        seconds of messages ahead of it on the subscribed connection. Bytes
        still arriving mean Redis is alive, however late the PONG."""
        while True:
            await trio.sleep(PING_EVERY)
            pong = conn.create_request(b"PING")
            read = conn.statistics.bytes_read
            while True:
                with trio.move_on_after(PING_TIMEOUT):
                    await pong
                    break
                if conn.statistics.bytes_read == read:
                    raise _ConnectionClosed(f"Redis answered nothing for {PING_TIMEOUT:g} s")
                read = conn.statistics.bytes_read

    def _set_up(self, up: bool) -> None:
        self._up = up
        self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


def _close_buffers(conn: BaseConnection) -> None:
    """Close the connection's in-memory streams.

    coredis 6.9 creates them with the connection and closes them only once
    connected: a connection that never got through (every retry during an
    outage) would leave them to the garbage collector, which warns."""
    for value in vars(conn).values():
        if isinstance(value, MemoryObjectSendStream | MemoryObjectReceiveStream):
            value.close()


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
