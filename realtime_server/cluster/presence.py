"""Who is online on the other nodes: the cluster's presence view (issue 13, item 3).

A user is online while they have a session on ANY node, and go offline
(after the grace period) only when their last session on the last node is
gone. Each node keeps, in memory, which users every other node holds, fed
by one cluster-wide channel, ``presence``:

- ``Delta``: a node's transitions, batched per scheduler tick. A user is
  *held* by a node from their first session there until the grace period
  after their last one: a reconnect within the grace, to this node or
  another, is no presence change anyone hears of. While the grace runs the
  user is *idle* there (held, no session): presence says online, but the
  push dispatcher must send to their phone (``active_elsewhere``). A down
  carries the time (the user's last seen) and whether the sender saw
  another node still holding them.
- ``Beat``: every ``beacon`` seconds, the count and an order-free digest
  (XOR of 64-bit hashes) of the users a node holds. A receiver whose view of
  that node differs (a delta lost while the bus was away) asks it for a
  ``Snapshot``; a node silent for 3 beacons is dead and its users leave the
  view. So a node killed with -9 leaves its users online for at most
  3 beacons (15 s by default), never forever.
- ``Snapshot``/``Sync``: the full list of a node's users, sent when asked:
  at a node's start, after a bus reconnect, or on a digest mismatch.
- ``Bye``: a node stopping; its users leave the view after the grace period
  (time for their clients to reconnect to another node without flapping).

Why one channel and not per-user ``p:<user>`` channels: ``presence.get``
can ask about anyone, at any time, and the answer must not wait for a round
trip over the bus; with every node hearing every transition the answer is in
memory. The cost is one small message per (user, node) connect/disconnect
transition per node, and O(online users) memory per node, which fits the
few-nodes deployments issue 13 is about. The broadcasts to watchers are
computed by each node that has watchers of the user (it reads the audience
from storage only then).

``last_seen`` is stored once per offline transition: by the node whose down
left nobody holding the user (it knows: its view has nobody else). When two
nodes' last sessions leave at the same moment, each saw the other and
neither would store; the receiver of the other's down, having sent its own
with "others" set, stores then (both store the same value, the later of the
two). For a dead node, the surviving node with the smallest key stores.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
import trio

from realtime_server.cluster import Cluster
from realtime_server.cluster.bus import BusUnavailable
from realtime_server.hub import Hub
from storage.base import now_ms

log = logging.getLogger(__name__)

# A node is dead after this many beacons without a word from it.
SILENT_BEACONS = 3
RECENT_MAX = 10_000


class PresenceListener(Protocol):
    """The node's presence tracker, told when the other nodes' part changes."""

    def remote_online(self, user_id: str) -> None:
        """Another node holds the user, and no other node did."""

    def remote_offline(self, user_id: str, last_seen: int, store: bool) -> None:
        """No other node holds the user any more; ``store``: this node writes last_seen."""


UP = 0  # a session (again); an idle user becomes active
IDLE = -1  # the last session left, the grace period runs


class Delta(msgspec.Struct, tag="d", array_like=True):
    node: str
    # (user, UP, IDLE or last_seen for down, down only: another node held them)
    events: list[tuple[str, int, bool]]


class Beat(msgspec.Struct, tag="b", array_like=True):
    node: str
    count: int
    digest: int


class Snapshot(msgspec.Struct, tag="s", array_like=True):
    node: str
    users: list[str]
    idle: list[str] = []


class Sync(msgspec.Struct, tag="q", array_like=True):
    node: str
    target: str  # "" asks every node


class Bye(msgspec.Struct, tag="x", array_like=True):
    node: str


Message = Delta | Beat | Snapshot | Sync | Bye

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def presence_channel(prefix: str) -> str:
    return f"{prefix}presence"


def user_hash(user_id: str) -> int:
    """Stable across processes (``hash`` of a str is not): the digest's terms."""
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "little")


@dataclass(slots=True, eq=False)
class _Remote:
    users: set[str] = field(default_factory=set)
    idle: set[str] = field(default_factory=set)  # a subset of users
    digest: int = 0
    heard: float = 0.0  # trio time of its last message
    heard_ms: int = 0  # the same on the wall clock: its users' last seen if it dies
    asked: float = -math.inf  # when it was last asked for a snapshot
    leaving_at: float | None = None  # after its Bye


class ClusterPresence:
    def __init__(
        self,
        cluster: Cluster,
        *,
        beacon: float,
        grace: float,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._clock = clock  # the node's (realtime_server.base.clock): last seen
        self._bus = cluster.bus
        self._key = cluster.node_key
        self._channel = presence_channel(cluster.prefix)
        self._beacon = beacon
        self._grace = grace
        self.listener: PresenceListener | None = None
        self._held: set[str] = set()
        self._idle: set[str] = set()  # held here without a session
        self._digest = 0
        self._nodes: dict[str, _Remote] = {}
        self._where: dict[str, int] = {}  # user -> how many other nodes hold them
        self._active: dict[str, int] = {}  # the same, counting only nodes with a session
        self._left_with_others: dict[str, int] = {}  # our downs sent while others held them
        self._recent: OrderedDict[str, int] = OrderedDict()  # last seen, from others' downs
        self._pending: list[tuple[str, int, bool]] = []
        self._wake = trio.Event()
        self.unpublished = 0  # messages lost to a bus outage (a snapshot repairs them)

    # ----- this node's transitions (synchronous, memory only) -------------------------

    def up(self, user_id: str) -> None:
        """The user has a session here (their first, or back within the grace)."""
        if user_id in self._held:
            if user_id in self._idle:
                self._idle.discard(user_id)
                self._queue((user_id, UP, False))
            return
        self._held.add(user_id)
        self._digest ^= user_hash(user_id)
        self._left_with_others.pop(user_id, None)
        self._queue((user_id, UP, False))

    def idle(self, user_id: str) -> None:
        """The user's last session here left; the grace period runs."""
        if user_id in self._held and user_id not in self._idle:
            self._idle.add(user_id)
            self._queue((user_id, IDLE, False))

    def down(self, user_id: str, last_seen: int) -> bool:
        """This node stops holding the user; whether another node still holds them."""
        others = user_id in self._where
        if user_id not in self._held:
            return others
        self._held.discard(user_id)
        self._idle.discard(user_id)
        self._digest ^= user_hash(user_id)
        if others:
            self._left_with_others[user_id] = last_seen
        self._queue((user_id, last_seen, others))
        return others

    # ----- queries ------------------------------------------------------------------

    def elsewhere(self, user_id: str) -> bool:
        """Whether another node holds the user (has a session, or is in its grace)."""
        return user_id in self._where

    def active_elsewhere(self, user_id: str) -> bool:
        """Whether another node has a session of the user now (not only its grace)."""
        return user_id in self._active

    def active_elsewhere_users(self) -> list[str]:
        """Users with a session on another node now (admin statistics)."""
        return list(self._active)

    def recent_last_seen(self, user_id: str) -> int | None:
        return self._recent.get(user_id)

    def nodes(self) -> list[str]:
        """The other nodes this one hears."""
        return sorted(self._nodes)

    # ----- running ------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._bus.subscribe(self._channel, self._received)
        self._bus.on_reconnect(self._reconnected)
        await self._bus.wait_subscribed()
        self._publish(Sync(self._key, ""))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._flush_loop)
                nursery.start_soon(self._beacon_loop)
                task_status.started()
        finally:
            try:
                self._bus.publish(self._channel, _encoder.encode(Bye(self._key)))
            except Exception as exc:  # the bus may be stopping too: the others time us out
                log.debug("presence bye not published: %r", exc)
            self._bus.unsubscribe(self._channel, self._received)

    def _queue(self, event: tuple[str, int, bool]) -> None:
        self._pending.append(event)
        self._wake.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            # Everything queued since the last flush goes out as one message:
            # a connect storm costs a few publishes, not one per session.
            events, self._pending = self._pending, []
            self._publish(Delta(self._key, events))

    async def _beacon_loop(self) -> None:
        while True:
            await trio.sleep(self._beacon)
            self._publish(Beat(self._key, len(self._held), self._digest))
            if self._bus.up:  # while the bus is down nobody can be heard: no verdict
                self._expire()

    def _publish(self, message: Message) -> None:
        try:
            self._bus.publish(self._channel, _encoder.encode(message))
        except BusUnavailable:
            self.unpublished += 1
            log.debug("bus down: presence %s not published", type(message).__name__)

    def _reconnected(self) -> None:
        # What was published meanwhile is lost both ways: tell ours in full,
        # ask everyone for theirs, and judge nobody dead for the outage.
        now = trio.current_time()
        for remote in self._nodes.values():
            remote.heard = now
            remote.asked = -math.inf
        self._pending.clear()
        self._publish(self._snapshot())
        self._publish(Sync(self._key, ""))

    # ----- the others ----------------------------------------------------------------

    def _received(self, payload: bytes) -> None:
        try:
            message = _decoder.decode(payload)
        except msgspec.DecodeError as exc:
            log.debug("bad presence message ignored: %s", exc)
            return
        if message.node == self._key:
            return
        remote = self._nodes.get(message.node)
        if remote is None:
            if isinstance(message, Bye):
                return
            remote = self._nodes[message.node] = _Remote()
            log.info("presence: hearing node %s", message.node)
        remote.heard = trio.current_time()
        remote.heard_ms = self._clock()
        if isinstance(message, Delta):
            for user, at, others in message.events:
                if at == UP:
                    self._add(remote, user)
                elif at == IDLE:
                    self._set_idle(remote, user)
                elif self._remove(remote, user):
                    mine = self._left_with_others.get(user)
                    store = others and mine is not None
                    self._offline(user, max(at, mine or 0), store)
        elif isinstance(message, Beat):
            if (message.count, message.digest) != (len(remote.users), remote.digest):
                if remote.heard - remote.asked >= self._beacon:
                    remote.asked = remote.heard
                    self._publish(Sync(self._key, message.node))
        elif isinstance(message, Snapshot):
            users = set(message.users)
            at = self._clock()
            for user in remote.users - users:
                if self._remove(remote, user):
                    self._offline(user, at, store=False)  # its sender stored when it left
            for user in users - remote.users:
                self._add(remote, user)
            idle = set(message.idle) & users
            for user in remote.idle - idle:
                self._add(remote, user)  # active again
            for user in idle - remote.idle:
                self._set_idle(remote, user)
        elif isinstance(message, Sync):
            if message.target in ("", self._key):
                self._publish(self._snapshot())
        else:  # Bye: its users get the grace period to come back through another node
            remote.leaving_at = remote.heard + self._grace

    def _snapshot(self) -> Snapshot:
        return Snapshot(self._key, list(self._held), list(self._idle))

    def _add(self, remote: _Remote, user: str) -> None:
        """``remote`` holds ``user`` with a session."""
        if user in remote.users:
            if user in remote.idle:
                remote.idle.discard(user)
                self._active[user] = self._active.get(user, 0) + 1
            return
        remote.users.add(user)
        remote.digest ^= user_hash(user)
        self._active[user] = self._active.get(user, 0) + 1
        n = self._where.get(user, 0)
        self._where[user] = n + 1
        if n == 0 and self.listener is not None:
            self.listener.remote_online(user)

    def _remove(self, remote: _Remote, user: str) -> bool:
        """Drop ``user`` from ``remote``; True when no other node holds them now."""
        if user not in remote.users:
            return False
        remote.users.discard(user)
        remote.digest ^= user_hash(user)
        if user in remote.idle:
            remote.idle.discard(user)
        else:
            self._inactive(user)
        n = self._where[user] - 1
        if n:
            self._where[user] = n
            return False
        del self._where[user]
        return True

    def _set_idle(self, remote: _Remote, user: str) -> None:
        if user in remote.users and user not in remote.idle:
            remote.idle.add(user)
            self._inactive(user)

    def _inactive(self, user: str) -> None:
        n = self._active[user] - 1
        if n:
            self._active[user] = n
        else:
            del self._active[user]

    def _offline(self, user: str, last_seen: int, store: bool) -> None:
        self._left_with_others.pop(user, None)
        self._recent[user] = last_seen
        self._recent.move_to_end(user)
        while len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)
        if self.listener is not None:
            self.listener.remote_offline(user, last_seen, store)

    def _expire(self) -> None:
        now = trio.current_time()
        dead = []
        for key, remote in self._nodes.items():
            deadline = remote.heard + SILENT_BEACONS * self._beacon
            if remote.leaving_at is not None:
                deadline = min(deadline, remote.leaving_at)
            if now >= deadline:
                dead.append(key)
        if not dead:
            return
        # One survivor stores the last seen of the dead node's users: the
        # smallest key among those this node still hears (itself included).
        writer = min([self._key, *(k for k in self._nodes if k not in dead)])
        for key in dead:
            remote = self._nodes.pop(key)
            log.warning(
                "presence: node %s %s; its %d users leave",
                key,
                "left" if remote.leaving_at is not None else "is silent",
                len(remote.users),
            )
            for user in list(remote.users):
                if self._remove(remote, user):
                    self._offline(user, remote.heard_ms, store=writer == self._key)


class OnlineAnywhere:
    """``is_online`` for the push dispatcher: a session here, or a user another
    node holds (no notification push to a phone whose user reads on a laptop
    connected to another node)."""

    def __init__(self, hub: Hub, view: ClusterPresence) -> None:
        self._hub = hub
        self._view = view

    def is_online(self, user_id: str) -> bool:
        return self._hub.is_online(user_id) or self._view.active_elsewhere(user_id)
