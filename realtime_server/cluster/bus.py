"""The node-to-node bus: what one node publishes, the nodes that listen receive.

Channels (names are built by ``channel_*`` below, under the deployment's prefix):
- ``r:<room>``  a room's committed batches and change events, published once
  by the node that owns the room; every node with a member session online
  listens and fans out to its own sessions.
- ``u:<user>``  what concerns one user's devices wherever they are connected
  (chat-list pushes, notifications, remote sign-out, presence).
- ``n:<node>``  requests for one node (a post forwarded to the room's owner)
  and their answers.

Contract of every implementation:
- ``publish`` never blocks and keeps the order of what one node publishes on
  one channel. It raises ``BusUnavailable`` while the bus is down, so the
  caller can answer ``unavailable`` instead of pretending.
- A node never receives what it published itself (it delivered locally).
- ``subscribe``/``unsubscribe`` are counted per (channel, handler): the
  channel is listened to while at least one handler holds it. They return at
  once; ``wait_subscribed`` waits until the broker has them. Handlers are
  synchronous and run in the bus's receiving task: they must only hand work
  over (queue to a session, ``tell_soon`` an actor), never wait.
- Delivery is at most once (Redis pub/sub): a message published while a node
  was disconnected is lost for it. ``on_reconnect`` callbacks run after the
  subscriptions are back, so the node can re-read from storage what it may
  have missed (seq and ev cursors make that exact).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio

log = logging.getLogger(__name__)

Handler = Callable[[bytes], None]


class BusUnavailable(Exception):
    """The bus is down: what needs another node cannot be done now (retryable)."""


class Bus(Protocol):
    node_key: str  # unique per process start: "<node_id>/<random>"

    @property
    def up(self) -> bool: ...

    def publish(self, channel: str, payload: bytes) -> None: ...

    def subscribe(self, channel: str, handler: Handler) -> None: ...

    def unsubscribe(self, channel: str, handler: Handler) -> None: ...

    def on_reconnect(self, callback: Callable[[], None]) -> None: ...

    async def wait_subscribed(self) -> None:
        """Return once every ``subscribe`` made so far is in effect at the broker.

        A session's replay reads storage only after this: a message committed
        between the read and a late subscription would otherwise be lost."""
        ...

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``started()`` once publishing and subscribing work."""
        ...


def channel_room(prefix: str, room_id: str) -> str:
    return f"{prefix}r:{room_id}"


def channel_user(prefix: str, user_id: str) -> str:
    return f"{prefix}u:{user_id}"


def channel_node(prefix: str, node_key: str) -> str:
    return f"{prefix}n:{node_key}"


def dispatch(handlers: dict[Handler, int] | None, channel: str, payload: bytes) -> None:
    """Hand ``payload`` to each handler; one that raises is logged, the others still run."""
    for handler in list(handlers or ()):
        try:
            handler(payload)
        except Exception:
            log.exception("bus handler for %s failed", channel)


class LocalBusNetwork:
    """Several nodes in ONE process joined by an in-process bus (tests, one-host demos).

    Delivery happens in the bus task of each receiving node, through a
    memory channel, so a handler never runs inside the publisher's call
    stack: the same shape of concurrency as over Redis. ``down()``/``up()``
    simulate a Redis outage for every node of the network.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, LocalBus] = {}
        self.available = True

    def attach(self, node_key: str) -> LocalBus:
        bus = LocalBus(self, node_key)
        self._nodes[node_key] = bus
        return bus

    def detach(self, node_key: str) -> None:
        self._nodes.pop(node_key, None)

    def down(self) -> None:
        self.available = False

    def up(self) -> None:
        self.available = True
        for node in list(self._nodes.values()):
            node._reconnected()

    def _route(self, origin: str, channel: str, payload: bytes) -> None:
        for key, node in list(self._nodes.items()):
            if key != origin and channel in node._handlers:
                node._inbox_send.send_nowait((channel, payload))


class LocalBus:
    def __init__(self, network: LocalBusNetwork, node_key: str) -> None:
        self.node_key = node_key
        self._network = network
        self._handlers: dict[str, dict[Handler, int]] = {}
        self._reconnect: list[Callable[[], None]] = []
        self._inbox_send, self._inbox = trio.open_memory_channel[tuple[str, bytes]](1_000_000)

    @property
    def up(self) -> bool:
        return self._network.available

    def publish(self, channel: str, payload: bytes) -> None:
        if not self._network.available:
            raise BusUnavailable("the bus is down")
        self._network._route(self.node_key, channel, payload)

    def subscribe(self, channel: str, handler: Handler) -> None:
        held = self._handlers.setdefault(channel, {})
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

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect.append(callback)

    def _reconnected(self) -> None:
        for callback in self._reconnect:
            callback()

    async def wait_subscribed(self) -> None:
        return None  # in-process: a subscription is in effect when made

    def subscribed(self, channel: str) -> bool:
        return channel in self._handlers

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            async for channel, payload in self._inbox:
                if not self._network.available:
                    continue  # lost, like a message Redis dropped while down
                dispatch(self._handlers.get(channel), channel, payload)
        finally:
            self._network.detach(self.node_key)
