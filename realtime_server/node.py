"""Wiring of one node: storage, writer, actors, REST and the gateway under one trio run.

Task tree::

    open_node
    ├── writer nursery          MessageWriter.serve (stops last: in-flight writes finish)
    └── service nursery
        ├── ActorSystem.serve   every room actor
        └── serve_node_listener REST (hypercorn) + /ws (gateway)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio

from actors.room import ROOM, RoomActor, RoomDeps
from actors.runtime import ActorRef, ActorSystem
from bridge.app import BridgeServices, create_app
from bridge.passwords import PasswordHasher
from bridge.tokens import TokenService
from protocol.errors import CloseCode
from realtime_server import handlers_chat
from realtime_server.dispatch import Dispatcher
from realtime_server.gateway import Gateway
from realtime_server.hub import Hub
from realtime_server.listener import serve_node_listener
from realtime_server.settings import Settings, resolve_jwt_secret
from realtime_server.wsframes import binary_frame
from storage.base import Store
from storage.factory import open_store
from storage.writer import MessageWriter

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 1.0


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

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.host}:{self.port}/ws"


@asynccontextmanager
async def open_node(settings: Settings) -> AsyncIterator[Node]:
    settings = resolve_jwt_secret(settings)
    async with open_store(
        settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
    ) as store:
        report = await store.migrate()
        if report.applied:
            log.info("applied migrations: %s", ", ".join(report.applied))
        async with trio.open_nursery() as writer_nursery:
            writer = MessageWriter(store)
            await writer_nursery.start(writer.serve)
            async with trio.open_nursery() as services:
                system = ActorSystem(
                    inbox_size=settings.actor_inbox_size,
                    idle_seconds=settings.actor_idle_seconds,
                    ask_timeout=settings.ask_timeout,
                )
                await services.start(system.serve)
                hub = Hub()
                deps = RoomDeps(
                    store=store,
                    writer=writer,
                    hub=hub,
                    frame=binary_frame,
                    cache_size=settings.room_cache_size,
                    resume_max=settings.resume_max_messages,
                )

                def room_factory(key: str, ref: ActorRef) -> RoomActor:
                    return RoomActor(key, ref, deps)

                system.register(ROOM, room_factory)
                tokens = TokenService(
                    settings.jwt_secret,
                    settings.access_token_ttl,
                    settings.refresh_token_ttl,
                    store,
                )
                passwords = PasswordHasher(settings.argon2_time_cost, settings.argon2_memory_kib)
                app = create_app(BridgeServices(settings, store, tokens, passwords))
                dispatcher = Dispatcher()
                handlers_chat.register(dispatcher)
                gateway = Gateway(
                    settings,
                    system,
                    hub,
                    tokens,
                    dispatcher,
                    services={"store": store, "writer": writer, "tokens": tokens},
                )
                port = await services.start(
                    partial(
                        serve_node_listener,
                        app,
                        gateway.handle,
                        host=settings.host,
                        port=settings.port,
                    )
                )
                node = Node(settings, store, writer, system, hub, gateway, tokens, port)
                log.info("serving REST on %s and WebSocket on %s", node.http_url, node.ws_url)
                try:
                    yield node
                finally:
                    # Tell clients to reconnect elsewhere, give the writers a
                    # moment to flush that close frame, then stop serving.
                    gateway.close_all(CloseCode.GOING_AWAY)
                    with trio.CancelScope(shield=True):
                        with trio.move_on_after(SHUTDOWN_GRACE):
                            await gateway.wait_all_closed()
                    services.cancel_scope.cancel()
            writer_nursery.cancel_scope.cancel()
