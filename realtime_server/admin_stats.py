"""The node's live statistics for admins: over REST and as a periodic push.

Rules:
- Sizes (connections, sessions, online users, live rooms, AI generations,
  calls) are read from the node's own objects when asked: nothing is counted
  for them on the hot paths.
- Rates (messages/s, rooms with traffic) come from ``metrics.RoomTraffic``,
  which the fan-out bumps once per batch; ``serve`` turns it into figures
  every ``interval`` seconds, and the latest figures are what REST answers.
- Several nodes (issue 13): each tick also publishes this node's figures
  (``realtime_server.cluster.stats``) and every snapshot adds the other
  nodes' latest; online users are distinct users across nodes (the cluster
  presence view), not a sum.
- Subscribers are admin sessions. Each tick pushes one frame, encoded once,
  to all of them; a closed session is dropped, and so is one whose user lost
  the admin role (one query per tick, only while someone is subscribed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from actors.runtime import ActorSystem
from protocol import codec
from protocol.frames_notify import AdminStats, AdminStatsData
from realtime_server.base import metrics
from realtime_server.cluster.presence import ClusterPresence
from realtime_server.cluster.stats import ClusterStats, NodeFigures
from realtime_server.hub import Hub
from realtime_server.session import Session
from storage.errors import StoreError
from storage.notifications import ADMIN, NotificationStore

log = logging.getLogger(__name__)


class LiveStats:
    def __init__(
        self,
        hub: Hub,
        system: ActorSystem,
        roles: NotificationStore,
        frame: Callable[[bytes], bytes],
        clock: Callable[[], int],
        *,
        interval: float,
        ai: Any = None,  # actors.ai_service.AiService
        calls: Any = None,  # actors.call_registry.CallRegistry
        cluster: ClusterStats | None = None,
        presence: ClusterPresence | None = None,
    ) -> None:
        self.interval = interval
        self._hub = hub
        self._system = system
        self._roles = roles
        self._frame = frame
        self._clock = clock
        self._ai = ai
        self._calls = calls
        self.cluster = self._cluster = cluster
        self._presence = presence
        # Set by the node once its gateway exists (the REST app is built first).
        self.connections: Callable[[], int] = lambda: len(hub)
        self._traffic = metrics.track_traffic(hub)
        self._rate = 0.0
        self._rooms_with_traffic = 0
        # The length of the window the rates cover: the configured interval
        # until a tick has passed, then what the last window really lasted
        # (a busy node's tick comes late), so rate x window is the count.
        self._window = interval
        self._subscribers: dict[Session, None] = {}  # insertion-ordered set

    def figures(self) -> NodeFigures:
        """This node's own summable figures."""
        return NodeFigures(
            node=self._cluster_key(),
            connections=self.connections(),
            sessions=len(self._hub),
            rooms_live=self._system.census().get("room", (0, 0, 0))[0],
            rooms_with_traffic=self._rooms_with_traffic,
            messages_per_second=self._rate,
            ai_generations=len(self._ai.streams) if self._ai is not None else 0,
            calls=self._calls.statistics()["open_calls"] if self._calls is not None else 0,
        )

    def snapshot(self) -> AdminStatsData:
        every = [self.figures()]
        if self._cluster is not None:
            every += self._cluster.others()
        online = self._hub.online_users()
        if self._presence is not None:
            hub = self._hub
            online += sum(not hub.is_online(u) for u in self._presence.active_elsewhere_users())
        return AdminStatsData(
            ts=self._clock(),
            connections=sum(f.connections for f in every),
            sessions=sum(f.sessions for f in every),
            online_users=online,
            rooms_live=sum(f.rooms_live for f in every),
            rooms_with_traffic=sum(f.rooms_with_traffic for f in every),
            messages_per_second=round(sum(f.messages_per_second for f in every), 2),
            ai_generations=sum(f.ai_generations for f in every),
            calls=sum(f.calls for f in every),
            interval=round(self._window, 3),
            nodes=len(every),
        )

    def _cluster_key(self) -> str:
        return "" if self._cluster is None else self._cluster.node_key

    def subscribe(self, session: Session) -> None:
        """From now on every tick reaches ``session``; it gets the figures at once too."""
        self._subscribers[session] = None
        session.push(self._encoded(self.snapshot()))

    def unsubscribe(self, session: Session) -> bool:
        return self._subscribers.pop(session, ...) is None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _encoded(self, data: AdminStatsData) -> bytes:
        return self._frame(codec.encode(AdminStats(d=data)))

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            last_at, last_messages = trio.current_time(), self._traffic.messages
            while True:
                await trio.sleep(self.interval)
                now, messages = trio.current_time(), self._traffic.messages
                self._window = max(now - last_at, 1e-9)
                self._rate = (messages - last_messages) / self._window
                self._rooms_with_traffic = len(self._traffic.rooms)
                self._traffic.rooms.clear()
                last_at, last_messages = now, messages
                if self._cluster is not None:
                    self._cluster.publish(self.figures())
                await self._push_tick()
        finally:
            metrics.untrack_traffic(self._hub)

    async def _push_tick(self) -> None:
        for session in [s for s in self._subscribers if s.close_code is not None]:
            del self._subscribers[session]
        if not self._subscribers:
            return
        users = {s.user_id for s in self._subscribers}
        try:
            admins = await self._roles.with_role(users, ADMIN)
        except StoreError as exc:  # keep the last known subscribers; try next tick
            log.debug("admin stats: role check failed: %r", exc)
            admins = users
        data = self._encoded(self.snapshot())
        for session in list(self._subscribers):
            if session.user_id not in admins:
                del self._subscribers[session]
            elif session.close_code is None:
                session.push(data)
