"""Prometheus metrics of this process, served at ``GET /metrics``.

Rules (the hot paths stay hot):
- Hooks elsewhere are one call into this module; the module decides what to
  count. Labelled series are bound once (``_IN``, ``_OUT``, ``_CLOSES``) so a
  hook never formats or looks up label values per frame.
- The fan-out path counts once per batch (messages, deliveries), never per
  delivery; what is a size right now (connections, sessions, live actors,
  inbox depth, writer queue) is read at scrape time from the node's own
  objects and costs nothing between scrapes.
- One registry per process (``REGISTRY``); nodes are watched while they run
  (``watch``), so a test process with several nodes reports their sum.

Every name starts with ``realtime_``; README "Operations" lists them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import Any, Protocol

import msgspec
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from protocol.errors import CloseCode
from protocol.frames import ClientFrame, ServerFrame

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
    return Counter(name, doc, labelnames=tuple(labels), registry=REGISTRY)


# ----- the socket ------------------------------------------------------------------

CONNECTIONS_OPENED = _counter(
    "realtime_connections_opened", "WebSocket connections accepted (upgrade done)."
)
FRAMES_IN = _counter("realtime_frames_in", "Client frames decoded, by type.", ["type"])
FRAMES_OUT = _counter(
    "realtime_frames_out",
    "Server frames queued to sessions, by type (fan-out and acks counted per batch).",
    ["type"],
)
CLOSES = _counter("realtime_ws_closes", "Sessions closed, by close code.", ["code"])
SLOW_CONSUMER_CLOSES = _counter(
    "realtime_slow_consumer_closes",
    "Sessions cut off because their outbound queue went over OUTBOUND_QUEUE_BYTES.",
)
DROPPED_BYTES = _counter(
    "realtime_outbound_dropped_bytes",
    "Queued outbound bytes dropped when a session closed (slow consumers above all).",
)

# ----- messages: acks and fan-out ----------------------------------------------------

ACKS = _counter("realtime_acks", "Messages acknowledged to their sender (durably stored).")
ACK_LATENCY = Histogram(
    "realtime_ack_latency_seconds",
    "From the room actor taking a message to its ack: batching plus the commit.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
FANOUT_BATCHES = _counter("realtime_fanout_batches", "Committed message batches fanned out.")
FANOUT_MESSAGES = _counter("realtime_fanout_messages", "Messages fanned out.")
FANOUT_DELIVERIES = _counter(
    "realtime_fanout_deliveries",
    "Message deliveries to member sessions on this node (messages x sessions).",
)

# ----- actors ------------------------------------------------------------------------

ACTOR_CRASHES = _counter("realtime_actor_crashes", "Actor crashes, by kind.", ["kind"])
ACTOR_RESTARTS = _counter(
    "realtime_actor_restarts", "Crashed actors restarted within their budget, by kind.", ["kind"]
)

# ----- storage ------------------------------------------------------------------------

WRITER_BATCH_ROWS = Histogram(
    "realtime_writer_batch_rows",
    "Rows per group commit of the message writer.",
    buckets=_SIZE_BUCKETS,
    registry=REGISTRY,
)
WRITER_COMMIT_SECONDS = Histogram(
    "realtime_writer_commit_seconds",
    "Duration of one group commit (one insert_messages call).",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
STORAGE_ERRORS = _counter(
    "realtime_storage_errors", "Storage failures, by where they surfaced.", ["where"]
)

# ----- AI and calls --------------------------------------------------------------------

AI_GENERATIONS = _counter(
    "realtime_ai_generations", "AI generations finished, by outcome.", ["outcome"]
)
AI_DELTAS = _counter("realtime_ai_deltas", "AI text deltas streamed (counted per generation).")
CALLS_STARTED = _counter("realtime_calls_started", "Calls started.")
CALLS_ENDED = _counter("realtime_calls_ended", "Calls ended, by outcome.", ["outcome"])

# ----- REST ------------------------------------------------------------------------------

HTTP_REQUESTS = _counter(
    "realtime_http_requests",
    "REST requests, by method, route and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "realtime_http_request_seconds",
    "REST request duration (to the response head), by route.",
    ["route"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# ----- pre-bound children: no label lookups on the hot paths --------------------------


def _tag(frame_type: type[msgspec.Struct]) -> str:
    return str(frame_type.__struct_config__.tag)


def _union_members(union: Any) -> tuple[type[msgspec.Struct], ...]:
    return tuple(getattr(union, "__args__", (union,)))


_IN: dict[type, Any] = {t: FRAMES_IN.labels(_tag(t)) for t in _union_members(ClientFrame)}
_IN_OTHER = FRAMES_IN.labels("other")
_OUT: dict[type, Any] = {t: FRAMES_OUT.labels(_tag(t)) for t in _union_members(ServerFrame)}
_OUT_OTHER = FRAMES_OUT.labels("other")
_OUT_MSG_NEW = FRAMES_OUT.labels("msg.new")
_OUT_OK = FRAMES_OUT.labels("ok")
_CLOSES = {code: CLOSES.labels(str(int(code))) for code in CloseCode}
_STORAGE_WRITER = STORAGE_ERRORS.labels("writer")
_STORAGE_REST = STORAGE_ERRORS.labels("rest")


# ----- hooks ---------------------------------------------------------------------------


now = time.perf_counter


def connection_opened() -> None:
    CONNECTIONS_OPENED.inc()


def frame_in(frame: ClientFrame) -> None:
    _IN.get(type(frame), _IN_OTHER).inc()


def frame_out(frame: msgspec.Struct) -> None:
    _OUT.get(type(frame), _OUT_OTHER).inc()


def session_closed(code: CloseCode, dropped_bytes: int) -> None:
    _CLOSES[code].inc()
    if code is CloseCode.SLOW_CONSUMER:
        SLOW_CONSUMER_CLOSES.inc()
    if dropped_bytes:
        DROPPED_BYTES.inc(dropped_bytes)


class _Hub(Protocol):
    def count_sessions(self, user_ids: Iterable[str]) -> int: ...


class RoomTraffic:
    """What one node's rooms fanned out since the admin statistics last looked
    (``track_traffic``): distinct rooms, and messages in total."""

    __slots__ = ("rooms", "messages")

    def __init__(self) -> None:
        self.rooms: set[str] = set()
        self.messages = 0


# Keyed by the node's hub (identity): one tracker per node, even with several
# nodes in one process; a node without admin statistics costs one dict miss.
_traffic: dict[object, RoomTraffic] = {}


def track_traffic(hub: object) -> RoomTraffic:
    return _traffic.setdefault(hub, RoomTraffic())


def untrack_traffic(hub: object) -> None:
    _traffic.pop(hub, None)


def fanned_out(
    hub: _Hub,
    room: str,
    members: Iterable[str],
    items: list[Any],
    origins: dict[Any, Any],
    *,
    traffic: bool = True,
) -> None:
    """One committed batch went out: ``items`` (each with ``since`` and ``waiters``).

    ``traffic``: count it as this node's room traffic (admin statistics); not
    for a batch another node wrote, which that node counts.

    Counted here, once per batch: deliveries are (online member sessions x
    messages) less each sender's own messages, which go back as acks instead.
    """
    n = len(items)
    sessions = hub.count_sessions(members)
    own = sum(len(indices) for indices in origins.values())
    deliveries = sessions * n - own
    FANOUT_BATCHES.inc()
    FANOUT_MESSAGES.inc(n)
    counted = _traffic.get(hub) if traffic else None
    if counted is not None and n:
        counted.rooms.add(room)
        counted.messages += n
    if deliveries > 0:
        FANOUT_DELIVERIES.inc(deliveries)
        _OUT_MSG_NEW.inc(deliveries)
    now = time.perf_counter()
    acks = 0
    for item in items:
        acks += len(item.waiters)
        ACK_LATENCY.observe(now - item.since)
    ACKS.inc(acks)
    _OUT_OK.inc(acks)


def actor_crashed(kind: str, restarted: bool) -> None:
    ACTOR_CRASHES.labels(kind).inc()
    if restarted:
        ACTOR_RESTARTS.labels(kind).inc()


def writer_committed(rows: int, started: float) -> None:
    WRITER_BATCH_ROWS.observe(rows)
    WRITER_COMMIT_SECONDS.observe(time.perf_counter() - started)


def writer_failed() -> None:
    _STORAGE_WRITER.inc()


def rest_storage_error() -> None:
    _STORAGE_REST.inc()


def ai_generation_finished(outcome: str, deltas: int) -> None:
    AI_GENERATIONS.labels(outcome).inc()
    if deltas:
        AI_DELTAS.inc(deltas)


def call_started() -> None:
    CALLS_STARTED.inc()


def call_ended(outcome: object) -> None:
    CALLS_ENDED.labels(str(getattr(outcome, "value", outcome))).inc()


_http_children: dict[tuple[str, str, int], Any] = {}
_http_seconds: dict[str, Any] = {}


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    # Routes are templates (/rooms/<room_id>), so the series stay few; cached
    # children spare the label lookup on every request.
    key = (method, route, status)
    child = _http_children.get(key)
    if child is None:
        child = _http_children[key] = HTTP_REQUESTS.labels(method, route, str(status))
    child.inc()
    timer = _http_seconds.get(route)
    if timer is None:
        timer = _http_seconds[route] = HTTP_SECONDS.labels(route)
    timer.observe(seconds)


# ----- what is read at scrape time ------------------------------------------------------


# What a scrape reads from a running node, as Protocols: this module sits under
# everything (realtime_server.base), so it names no node, actor or writer class;
# realtime_server.node.Node fits WatchedNode.
class _Count(Protocol):
    @property
    def started(self) -> int: ...


class _Queue(Protocol):
    @property
    def queued(self) -> int: ...


class _Actors(Protocol):
    def statistics(self) -> _Count: ...
    def census(self) -> Mapping[str, tuple[int, int, int]]: ...


class _Writer(Protocol):
    def statistics(self) -> _Queue: ...


class _Gateway(Protocol):
    @property
    def connections(self) -> int: ...


class WatchedNode(Protocol):
    @property
    def gateway(self) -> _Gateway: ...
    @property
    def hub(self) -> Sized: ...
    @property
    def system(self) -> _Actors: ...
    @property
    def writer(self) -> _Writer: ...


_nodes: list[WatchedNode] = []


def watch(node: WatchedNode) -> None:
    """Report ``node``'s live sizes from now on, until ``forget(node)``."""
    _nodes.append(node)


def forget(node: WatchedNode) -> None:
    _nodes.remove(node)


class _LiveCollector:
    """Gauges read from the running nodes when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        nodes = list(_nodes)
        yield _gauge(
            "realtime_connections",
            "Open WebSocket connections.",
            sum(n.gateway.connections for n in nodes),
        )
        yield _gauge(
            "realtime_sessions",
            "Sessions past hello, fan-out targets.",
            sum(len(n.hub) for n in nodes),
        )
        live = GaugeMetricFamily("realtime_actors", "Live actors, by kind.", labels=["kind"])
        depth = GaugeMetricFamily(
            "realtime_actor_inbox_depth",
            "Messages waiting in actor inboxes, by kind.",
            labels=["kind"],
        )
        deepest = GaugeMetricFamily(
            "realtime_actor_inbox_depth_max", "The fullest actor inbox, by kind.", labels=["kind"]
        )
        totals: dict[str, list[int]] = {}
        started = 0
        for node in nodes:
            started += node.system.statistics().started
            for kind, (count, queued, most) in node.system.census().items():
                t = totals.setdefault(kind, [0, 0, 0])
                t[0] += count
                t[1] += queued
                t[2] = max(t[2], most)
        for kind, (count, queued, most) in sorted(totals.items()):
            live.add_metric([kind], count)
            depth.add_metric([kind], queued)
            deepest.add_metric([kind], most)
        yield live
        yield depth
        yield deepest
        yield _gauge(
            "realtime_actors_started",
            "Actor incarnations started (counter).",
            started,
            counter=True,
        )
        yield _gauge(
            "realtime_writer_queued_jobs",
            "Batches waiting for the message writer.",
            sum(n.writer.statistics().queued for n in nodes),
        )


def _gauge(name: str, doc: str, value: float, *, counter: bool = False) -> Metric:
    if counter:
        from prometheus_client.core import CounterMetricFamily

        return CounterMetricFamily(name, doc, value=value)
    return GaugeMetricFamily(name, doc, value=value)


REGISTRY.register(_LiveCollector())


def render() -> bytes:
    """The Prometheus text exposition of everything above."""
    return generate_latest(REGISTRY)
