"""Admin statistics for the whole deployment (issue 13): each node's figures
on the bus, summed by every node that is asked for them.

- Every ``interval`` (``ADMIN_STATS_INTERVAL``) each node publishes its own
  figures (``NodeFigures``) on the deployment's ``stats`` channel and keeps
  the latest figures of every other node it hears. A node not heard for
  ``STALE_INTERVALS`` intervals (stopped, killed, cut off) no longer counts.
- Sums are exact for what lives on one node at a time: connections and
  sessions (a socket is on one node), room actors, messages per second (a
  batch is counted by the room's leader only, at its fan-out), AI answers
  (each runs on the node where it was asked), calls (counted by their leader).
  ``rooms_with_traffic`` is summed too: a room whose lease moved within the
  window counts once on each node that wrote it.
- Online users are distinct users, not a sum: this node's users plus those
  the cluster presence view has with a session on another node and none here.
- Reading (``others``) is memory only: REST and the push tick never wait for
  the bus. With the bus down the figures are this node's plus what was last
  heard (until stale), and a publish lost meanwhile is only a late figure.
"""

from __future__ import annotations

import logging

import msgspec
import trio

from realtime_server.cluster import Cluster
from realtime_server.cluster.bus import BusUnavailable

log = logging.getLogger(__name__)

STALE_INTERVALS = 3


class NodeFigures(msgspec.Struct, array_like=True, gc=False):
    """One node's own figures (the summable part of ``AdminStatsData``)."""

    node: str
    connections: int
    sessions: int
    rooms_live: int
    rooms_with_traffic: int
    messages_per_second: float
    ai_generations: int
    calls: int


_decoder = msgspec.msgpack.Decoder(NodeFigures)
_encoder = msgspec.msgpack.Encoder()


class ClusterStats:
    def __init__(self, cluster: Cluster, *, interval: float) -> None:
        self._bus = cluster.bus
        self.node_key = self._key = cluster.node_key
        self._channel = f"{cluster.prefix}stats"
        self._stale_after = STALE_INTERVALS * interval
        self._heard: dict[str, tuple[float, NodeFigures]] = {}

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._bus.subscribe(self._channel, self._received)
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            self._bus.unsubscribe(self._channel, self._received)

    def publish(self, figures: NodeFigures) -> None:
        try:
            self._bus.publish(self._channel, _encoder.encode(figures))
        except BusUnavailable:
            log.debug("admin stats: this node's figures not published (bus down)")

    def others(self) -> list[NodeFigures]:
        """The latest figures of every other node heard from recently."""
        cutoff = trio.current_time() - self._stale_after
        for node in [n for n, (at, _) in self._heard.items() if at < cutoff]:
            del self._heard[node]
        return [figures for _, figures in self._heard.values()]

    def _received(self, payload: bytes) -> None:
        try:
            figures = _decoder.decode(payload)
        except msgspec.DecodeError:
            log.warning("stats channel: undecodable message dropped")
            return
        if figures.node != self._key:
            self._heard[figures.node] = (trio.current_time(), figures)
