"""Wiring of one node: storage, writer, actors, REST and the gateway under one trio run.

Task tree, and the step of ``open_node`` that starts each part::

    open_node
    ├── writer nursery          open_storage: MessageWriter.serve (stops last:
    │                           in-flight writes finish)
    └── services (open_services: they stop in the reverse of their start order)
        ├── bus, ActorSystem    start_core: the bus, every actor, the cluster links
        ├── ExpirySweeper.serve start_rooms: room actors, disappearing messages, push
        ├── CallRegistry.serve  start_calls: call actors
        ├── typing, presence,   start_services: what REST and the socket share
        │   AI, billing, stats,
        │   stories
        └── serve_node_listener start_listener: REST (hypercorn) + /ws (gateway)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from actors.ai_service import AiService
from actors.call import CALL, CallActor, CallDeps
from actors.call_registry import CallRegistry
from actors.room import ROOM, RoomActor, RoomDeps, RoomMessage
from actors.room_expiry import ExpirySweeper
from actors.runtime import ActorRef, ActorSystem
from actors.supervision import Services, hold_until_cancelled, open_services
from bridge.accounts.passwords import PasswordHasher
from bridge.accounts.tokens import TokenService
from bridge.app import BridgeServices, create_app
from bridge.billing.service import Billing
from bridge.calls.turn import ice_servers
from bridge.notifications.notifier import Notifier
from protocol.errors import CloseCode
from realtime_server import (
    handlers_ai,
    handlers_calls,
    handlers_chat,
    handlers_notify,
    handlers_presence,
    handlers_typing,
)
from realtime_server.admin_stats import LiveStats
from realtime_server.base import metrics
from realtime_server.base.clock import Clock, WallClock, seconds_of
from realtime_server.base.settings import Settings, resolve_jwt_secret
from realtime_server.cluster import Cluster
from realtime_server.cluster.ai import ClusterAi
from realtime_server.cluster.bus import Bus
from realtime_server.cluster.calls import ClusterCalls
from realtime_server.cluster.connect import open_bus
from realtime_server.cluster.presence import ClusterPresence, OnlineAnywhere
from realtime_server.cluster.rooms import ClusterRooms
from realtime_server.cluster.stats import ClusterStats
from realtime_server.cluster.users import UserChannels
from realtime_server.dispatch import Dispatcher
from realtime_server.gateway import Gateway
from realtime_server.handlers_typing import TypingTracker
from realtime_server.hub import Hub
from realtime_server.listener import HttpLimits, ListenerControl, serve_node_listener
from realtime_server.notification_prune import NotificationSweeper
from realtime_server.presence import PresenceTracker, RoomMembers
from realtime_server.push.dispatcher import PushDispatcher
from realtime_server.push.service import serve_push
from realtime_server.services import NodeServices
from realtime_server.story_expiry import StorySweeper
from realtime_server.wsframes import binary_frame
from storage.base import Store
from storage.blobs import LocalBlobStore
from storage.calls import calls_store
from storage.outage import health_of
from storage.sql.factory import open_store
from storage.sql.writer import MessageWriter

log = logging.getLogger(__name__)


@dataclass
class Node:
    settings: Settings
    store: Store
    writer: MessageWriter
    system: ActorSystem
    hub: Hub
    gateway: Gateway
    tokens: TokenService
    port: int
    listener: ListenerControl
    expiry: ExpirySweeper | None = None
    cluster: Cluster | None = None  # None: a single node (no REDIS_URL, no bus given)
    cluster_rooms: ClusterRooms | None = None
    users: UserChannels | None = None  # a user's sessions on every node

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.host}:{self.port}/ws"


@asynccontextmanager
async def open_node(
    settings: Settings,
    *,
    clock: Clock | None = None,
    bus: Bus | None = None,
    reuse_port: bool = False,
) -> AsyncIterator[Node]:
    """``clock`` is the node's one clock for every wall-time rule (see
    ``realtime_server.base.clock``): message and story expiry, the delete window,
    mute expiry, OTP and rate-limit windows, token lifetimes, quotas and plan
    periods, last seen (default: the wall clock); tests pass one they move.

    ``bus`` joins this node to others (issue 13): tests pass an in-process
    ``LocalBus``; otherwise ``REDIS_URL`` makes a Redis one, and neither
    means a single node.

    ``reuse_port``: the port is shared with sibling worker processes
    (``serve --workers N``, SO_REUSEPORT).

    The steps, in the order they start (and the reverse of how they stop):
    storage and its writer, the realtime core (bus, actors, hub, cluster
    links), the room and call actors, the services both REST and the socket
    use, then the app, the gateway and the listener."""
    node_clock = clock or WallClock()
    settings = resolve_jwt_secret(settings)
    clustered = bus is not None or bool(settings.redis_url)
    async with open_storage(settings, clustered=clustered) as (store, writer):
        async with open_services() as services:
            core = await start_core(services, settings, store, bus, node_clock)
            rooms = await start_rooms(services, core, writer)
            calls = await start_calls(services, core, rooms)
            shared = await start_services(services, core, rooms, calls)
            node = await start_listener(services, core, writer, rooms, calls, shared, reuse_port)
            log.info("serving REST on %s and WebSocket on %s", node.http_url, node.ws_url)
            # /metrics reads the node until shutdown.
            metrics.watch(node)
            await services.start(partial(hold_until_cancelled, on_stop=partial(_forget, node)))
            try:
                yield node
            finally:
                with trio.CancelScope(shield=True):
                    await drain(node)
                    if core.rooms_link is not None:
                        await core.rooms_link.release()
                    # In the reverse of the start order (actors.supervision).
                    await services.aclose()


async def _forget(node: Node) -> None:
    metrics.forget(node)


@asynccontextmanager
async def open_storage(
    settings: Settings, *, clustered: bool
) -> AsyncIterator[tuple[Store, MessageWriter]]:
    """The migrated store, and the message writer serving in its own nursery:
    it stops last, so in-flight writes finish after every other service."""
    database_url = settings.database_url
    if settings.is_postgres and clustered:
        database_url = cluster_database_url(database_url, settings.node_lease_seconds)
    async with open_store(database_url, sqlite_synchronous=settings.sqlite_synchronous) as store:
        report = await store.migrate()
        if report.applied:
            log.info("applied migrations: %s", ", ".join(report.applied))
        async with trio.open_nursery() as writer_nursery:
            writer = MessageWriter(store)
            await writer_nursery.start(writer.serve)
            yield store, writer
            writer_nursery.cancel_scope.cancel()


@dataclass(frozen=True)
class Core:
    """The realtime core every later step builds on."""

    settings: Settings
    store: Store
    clock: Clock
    system: ActorSystem
    hub: Hub
    users: UserChannels  # a user's sessions on every node
    cluster: Cluster | None  # None: a single node
    rooms_link: ClusterRooms | None
    cluster_presence: ClusterPresence | None

    def push_to_user(self, user_id: str, raw: bytes) -> None:
        # Chat-list pushes (issue 18): every device of the user here.
        self.users.send(user_id, binary_frame(raw))


async def start_core(
    services: Services, settings: Settings, store: Store, bus: Bus | None, clock: Clock
) -> Core:
    """The bus (first in, last out), the actor system, the hub, the cluster links."""
    if bus is None and settings.redis_url:
        bus = open_bus(settings)
    cluster = Cluster(bus, settings.redis_prefix) if bus is not None else None
    if bus is not None:
        # First in, last out: every other service may publish until it stops.
        await services.start(bus.serve)
        log.info("node %s joined the bus", bus.node_key)
    system = ActorSystem(
        inbox_size=settings.actor_inbox_size,
        idle_seconds=settings.actor_idle_seconds,
        ask_timeout=settings.ask_timeout,
        health=health_of(store),
    )
    await services.start(system.serve)
    hub = Hub()
    # Several nodes (issue 13): room leases, forwarding, remote fan-out.
    rooms_link: ClusterRooms | None = None
    if cluster is not None:
        rooms_link = ClusterRooms(
            cluster,
            store,
            hub,
            system,
            binary_frame,
            lease_seconds=settings.node_lease_seconds,
            ask_timeout=settings.ask_timeout,
            resume_max=settings.resume_max_messages,
        )
        await services.start(rooms_link.serve)
    # Issue 13: a user's devices and presence on every node (the bus is
    # untouched on a single node).
    users = UserChannels(hub, cluster)
    cluster_presence = None
    if cluster is not None:
        cluster_presence = ClusterPresence(
            cluster,
            beacon=settings.presence_beacon_seconds,
            grace=settings.presence_grace,
            clock=clock.now_ms,
        )
        users.elsewhere = cluster_presence.elsewhere
    return Core(settings, store, clock, system, hub, users, cluster, rooms_link, cluster_presence)


@dataclass(frozen=True)
class Rooms:
    expiry: ExpirySweeper
    notifier: Notifier
    push: PushDispatcher


async def start_rooms(services: Services, core: Core, writer: MessageWriter) -> Rooms:
    """Room actors, with what they tell: the expiry sweeper, notifications, push."""
    settings, store, hub = core.settings, core.store, core.hub
    # Disappearing messages (issue 18): rooms tell the sweeper of new
    # expiries; it erases them through the rooms.
    expiry = ExpirySweeper(store, core.system, core.clock)
    # Notifications (issue 15): stored per user, pushed to their sessions here.
    notifier = Notifier(store, hub, binary_frame, core.clock.now_ms)
    if core.cluster is not None:
        notifier.users = core.users
    # Push to offline devices (issue 15, part 3): rooms only enqueue.
    online = hub if core.cluster_presence is None else OnlineAnywhere(hub, core.cluster_presence)
    push = await services.start(serve_push, settings, store, online, core.clock.now_ms)
    notifier.offline_push = push.notified
    deps = RoomDeps(
        store=store,
        writer=writer,
        hub=hub,
        frame=binary_frame,
        cache_size=settings.room_cache_size,
        resume_max=settings.resume_max_messages,
        delete_window_ms=settings.message_delete_window_seconds * 1000,
        expiring=expiry.scheduled,
        pushed=push.messages_stored,
        link=core.rooms_link,
        clock=core.clock.now_ms,
    )

    def room_factory(key: str, ref: ActorRef[RoomMessage]) -> RoomActor:
        return RoomActor(key, ref, deps)

    core.system.register(ROOM, room_factory)
    # Sweeps what expired while the node was down before serving.
    await services.start(expiry.serve)
    return Rooms(expiry, notifier, push)


async def start_calls(services: Services, core: Core, rooms: Rooms) -> CallRegistry:
    """Call actors (issue 5): one per call; busy users and call timers live in
    the node's registry. Calls a stopped node left open cannot go on (their
    signaling state is gone): they end first."""
    settings, store, hub, system = core.settings, core.store, core.hub, core.system
    call_registry = CallRegistry()
    await services.start(call_registry.serve)
    calls = calls_store(store)
    # Several nodes (issue 13): a call is led by its lease holder; only calls
    # whose leader is gone end, by the link's sweep.
    calls_link: ClusterCalls | None = None
    if core.cluster is not None:
        calls_link = ClusterCalls(
            core.cluster,
            store,
            hub,
            system,
            call_registry,
            binary_frame,
            lease_seconds=settings.node_lease_seconds,
            ask_timeout=settings.ask_timeout,
        )
    elif swept := await calls.end_unfinished("failed", core.clock.now_ms()):
        log.info("ended %d calls left unfinished as failed", len(swept))
    call_deps = CallDeps(
        store=store,
        calls=calls,
        hub=hub,
        registry=call_registry,
        system=system,
        frame=binary_frame,
        ice_servers=lambda user: ice_servers(settings, user, core.clock.now_ms() / 1000),
        clock=core.clock.now_ms,
        ring_seconds=settings.call_ring_seconds,
        reconnect_grace=settings.call_reconnect_grace,
        max_participants=settings.call_max_participants,
        notifier=rooms.notifier,
        ringing=rooms.push.call_ringing,
        link=calls_link,
    )
    system.register(CALL, lambda key, ref: CallActor(key, ref, call_deps))
    if calls_link is not None:
        await services.start(calls_link.serve)
    return call_registry


@dataclass(frozen=True)
class SharedServices:
    """What both the REST routes and the socket handlers use."""

    tokens: TokenService
    passwords: PasswordHasher
    members: RoomMembers
    typing: TypingTracker
    presence: PresenceTracker
    ai: AiService
    billing: Billing
    stats: LiveStats
    stories: StorySweeper


async def start_services(
    services: Services, core: Core, rooms: Rooms, calls: CallRegistry
) -> SharedServices:
    """Accounts, typing, presence, AI, billing, admin statistics, stories."""
    settings, store, hub, users = core.settings, core.store, core.hub, core.users
    tokens = TokenService(
        settings.jwt_secret,
        settings.access_token_ttl,
        settings.refresh_token_ttl,
        store,
        clock=seconds_of(core.clock),
    )
    # A sign-out on another node: its tokens are refused here too.
    users.revoked = lambda _user, sessions: tokens.signed_out_elsewhere(sessions)
    passwords = PasswordHasher(settings.argon2_time_cost, settings.argon2_memory_kib)
    members = RoomMembers(store, settings.members_cache_seconds)
    typing = TypingTracker(
        hub,
        members,
        ttl=settings.typing_ttl,
        throttle=settings.typing_throttle,
        per_minute=settings.typing_max_per_minute,
    )
    if core.cluster is not None:
        typing.remote = users.send_elsewhere_if_online
    await services.start(typing.serve)
    if core.rooms_link is not None:

        def room_members_changed(room_id: str) -> None:
            # A group change made on another node: typing here must not go
            # on reaching a removed member.
            members.invalidate(room_id)
            typing.members_changed(room_id)

        core.rooms_link.on_members.append(room_members_changed)
    presence = PresenceTracker(
        store,
        hub,
        grace=settings.presence_grace,
        throttle=settings.presence_throttle,
        cluster=core.cluster_presence,
        clock=core.clock.now_ms,
    )
    await services.start(presence.serve)
    if core.cluster_presence is not None:
        core.cluster_presence.listener = presence
        await services.start(core.cluster_presence.serve)
    # AI generations (issue 4): one supervisor, providers' clients reused.
    ai_link: ClusterAi | None = None
    if core.rooms_link is not None:
        # Generations across nodes (issue 13): the room's slot, remote devices.
        ai_link = ClusterAi(
            core.rooms_link,
            ask_timeout=settings.ask_timeout,
            stale_after=max(settings.ai_first_token_timeout, settings.ai_idle_timeout)
            + 2 * settings.node_lease_seconds,
        )
    ai = AiService(
        settings, store, core.system, hub, binary_frame, link=ai_link, clock=core.clock.now_ms
    )
    if ai_link is not None:
        ai_link.service = ai
        await services.start(ai_link.serve)
    await services.start(ai.serve)
    # Billing (issue 6): plans, Stripe and Konnect, AI-message quotas.
    billing = Billing(settings, store, clock=core.clock.now_ms)
    await services.start(billing.serve)
    # Every AI ask goes through billing's quota before a provider is called.
    ai.quota = billing.quota
    billing.subscriptions.notifier = rooms.notifier
    # Admin statistics (issue 15): figures of this node, pushed to subscribers.
    stats = LiveStats(
        hub,
        core.system,
        rooms.notifier.store,
        binary_frame,
        core.clock.now_ms,
        interval=settings.admin_stats_interval,
        ai=ai,
        calls=calls,
        cluster=(
            None
            if core.cluster is None
            else ClusterStats(core.cluster, interval=settings.admin_stats_interval)
        ),
        presence=core.cluster_presence,
    )
    if stats.cluster is not None:
        await services.start(stats.cluster.serve)
    await services.start(stats.serve)
    # Stories (issue 15): expired ones leave storage and the blob store.
    media_blobs = LocalBlobStore(Path(settings.data_dir) / "media")
    stories = StorySweeper(store, media_blobs, core.clock)
    await services.start(stories.serve)
    # Notifications: read ones past retention, and beyond a user's cap, go.
    await services.start(
        NotificationSweeper(
            store,
            core.clock,
            retention_days=settings.notifications_retention_days,
            max_per_user=settings.notifications_max_per_user,
        ).serve
    )
    return SharedServices(tokens, passwords, members, typing, presence, ai, billing, stats, stories)


async def start_listener(
    services: Services,
    core: Core,
    writer: MessageWriter,
    rooms: Rooms,
    calls: CallRegistry,
    shared: SharedServices,
    reuse_port: bool,
) -> Node:
    """The REST app, the socket handlers and the gateway, behind one listener."""
    settings, store, users, rooms_link = core.settings, core.store, core.users, core.rooms_link

    def revoke_sockets(user_id: str, session_ids: Sequence[str]) -> None:
        # On every node (issue 13): that device may be connected anywhere.
        users.close_sessions(user_id, session_ids, CloseCode.SESSION_REVOKED)

    app = create_app(
        BridgeServices(
            settings,
            store,
            shared.tokens,
            shared.passwords,
            system=core.system,
            presence=shared.presence,
            typing=shared.typing,
            members=shared.members,
            ai=shared.ai,
            billing=shared.billing,
            calls=calls,
            # Onboarding (issue 8): a remote sign-out closes that device's
            # sockets at once.
            revoke_sockets=revoke_sockets,
            clock=core.clock.now_ms,
            push_to_user=core.push_to_user,
            notifier=rooms.notifier,
            stats=shared.stats,
            stories=shared.stories,
            room_changed=(
                None
                if rooms_link is None
                else lambda room, blocks: rooms_link.members_changed(room, blocks=blocks)
            ),
        )
    )
    dispatcher = Dispatcher()
    handlers_chat.register(dispatcher)
    handlers_typing.register(dispatcher)
    handlers_presence.register(dispatcher)
    handlers_ai.register(dispatcher)
    handlers_calls.register(dispatcher)
    handlers_notify.register(dispatcher)
    gateway = Gateway(
        settings,
        core.system,
        core.hub,
        shared.tokens,
        dispatcher,
        services=NodeServices(
            store=store,
            writer=writer,
            tokens=shared.tokens,
            typing=shared.typing,
            presence=shared.presence,
            ai=shared.ai,
            quota=shared.billing.quota,
            clock=core.clock.now_ms,
            push_to_user=core.push_to_user,
            stats=shared.stats,
            cluster_rooms=rooms_link,
            users=users if core.cluster is not None else None,
        ),
    )
    shared.stats.connections = lambda: gateway.connections
    listener = ListenerControl()
    port = await services.start(
        partial(
            serve_node_listener,
            app,
            gateway.handle,
            host=settings.host,
            port=settings.port,
            limits=HttpLimits(
                head_timeout=settings.http_head_timeout,
                read_timeout=settings.http_read_timeout,
                write_timeout=settings.http_write_timeout,
                keep_alive_timeout=settings.http_keep_alive_timeout,
                max_connections=settings.rest_max_connections,
            ),
            control=listener,
            reuse_port=reuse_port,
        )
    )
    return Node(
        settings,
        store,
        writer,
        core.system,
        core.hub,
        gateway,
        shared.tokens,
        port,
        listener,
        rooms.expiry,
        core.cluster,
        rooms_link,
        users,
    )


def cluster_database_url(url: str, lease_seconds: float) -> str:
    """The database URL of a node among several (issue 13).

    A node frozen (SIGSTOP, a stalled VM) in the middle of a write holds its
    room's lease row locked, and no other node could take the room over for
    as long as it stays frozen. PostgreSQL ends a session left idle inside a
    transaction after ``idle_in_transaction_session_timeout``: the frozen
    write is rolled back (it never committed, so nothing was acked) and the
    lock is free. Twice the lease, so a merely slow node is never cut off.
    (asyncpg sends unknown URL parameters as server settings.)
    """
    ms = max(int(lease_seconds * 2000), 1000)
    return f"{url}{'&' if '?' in url else '?'}idle_in_transaction_session_timeout={ms}"


async def drain(node: Node) -> None:
    """A graceful stop, bounded by SHUTDOWN_TIMEOUT (then CLOSE_TIMEOUT for the
    close frames): what a client sent before it is answered.

    1. Stop accepting connections, and stop reading frames on open sockets
       (each finishes the frame it is handling).
    2. Wait until nothing is in flight: no frame being handled, no room with
       a post queued or a batch in the writer, no REST request running.
    3. Close every session with 1001 GOING_AWAY *after* what is queued for it,
       so every ack of a stored message reaches its sender.
    Whatever is still running after that is cancelled by the caller.
    """
    settings, gateway = node.settings, node.gateway
    started = trio.current_time()
    node.listener.stop_accepting()
    gateway.begin_drain()
    with trio.move_on_after(settings.shutdown_timeout) as waiting:
        while (  # noqa: ASYNC110 - counters of other tasks
            gateway.handling
            or node.system.busy(ROOM)
            or node.listener.rest_requests
            or (node.cluster_rooms is not None and node.cluster_rooms.waiting)
        ):
            await trio.sleep(0.005)
    if waiting.cancelled_caught:
        log.warning(
            "shutdown: still busy after %gs (%d frames, %d rooms, %d REST requests); closing",
            settings.shutdown_timeout,
            gateway.handling,
            node.system.busy(ROOM),
            node.listener.rest_requests,
        )
    gateway.close_all(CloseCode.GOING_AWAY, flush=True)
    with trio.move_on_after(settings.close_timeout + 1):
        await gateway.wait_all_closed()
    log.info(
        "shutdown: drained in %.2fs, %d sockets left open",
        trio.current_time() - started,
        gateway.connections,
    )
