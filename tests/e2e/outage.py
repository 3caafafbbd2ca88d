"""Real storage outages for end-to-end tests, without stopping the shared server.

- PostgreSQL: the node reaches the (shared) server through ``TcpProxy``, a
  loopback TCP relay. ``cut()`` drops every open connection and refuses new
  ones (accepted, then closed at once: what a restarting server or a broken
  network does to a client), ``restore()`` relays again. The node's pool sees
  exactly what it would see if the server went away: its connections die and
  reconnecting fails.
- SQLite: another connection takes the database's write lock
  (``BEGIN EXCLUSIVE``), as a backup or maintenance tool would; writes then
  fail with "database is locked" once the busy timeout has passed, reads go on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import trio

from storage.sql.factory import SQLITE_PREFIX


@dataclass(eq=False)
class TcpProxy:
    target_host: str
    target_port: int
    port: int = 0
    down: bool = False
    _scopes: set[trio.CancelScope] = field(default_factory=set)

    def cut(self) -> None:
        self.down = True
        for scope in list(self._scopes):
            scope.cancel()

    def restore(self) -> None:
        self.down = False

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.down:
            await trio.aclose_forcefully(client)
            return
        try:
            server = await trio.open_tcp_stream(self.target_host, self.target_port)
        except OSError:
            await trio.aclose_forcefully(client)
            return
        scope = trio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, client, server, nursery.cancel_scope)
                    nursery.start_soon(_pump, server, client, nursery.cancel_scope)
        finally:
            self._scopes.discard(scope)
            await trio.aclose_forcefully(client)
            await trio.aclose_forcefully(server)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    done.cancel()


@asynccontextmanager
async def open_tcp_proxy(host: str, port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(host, port)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, proxy._handle, 0, host="127.0.0.1"))
        proxy.port = listeners[0].socket.getsockname()[1]
        yield proxy
        nursery.cancel_scope.cancel()


@dataclass(eq=False)
class Outage:
    """Start and end a storage outage for a node on ``url``."""

    url: str
    proxy: TcpProxy | None = None
    _lock: sqlite3.Connection | None = None

    def begin(self) -> None:
        if self.proxy is not None:
            self.proxy.cut()
            return
        path = self.url[len(SQLITE_PREFIX) :]
        self._lock = sqlite3.connect(path, isolation_level=None, timeout=10)
        self._lock.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self.proxy is not None:
            self.proxy.restore()
            return
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None


@asynccontextmanager
async def open_outage(database_url: str) -> AsyncIterator[Outage]:
    """An ``Outage`` and the URL a node must use for it to apply (``outage.url``)."""
    if database_url.startswith(SQLITE_PREFIX):
        outage = Outage(database_url)
        try:
            yield outage
        finally:
            outage.end()
        return
    parts = urlsplit(database_url)
    assert parts.hostname is not None
    async with open_tcp_proxy(parts.hostname, parts.port or 5432) as proxy:
        user = f"{parts.username}@" if parts.username else ""
        netloc = f"{user}127.0.0.1:{proxy.port}"
        yield Outage(urlunsplit(parts._replace(netloc=netloc)), proxy)
