"""Fresh, migrated PostgreSQL schemas for the tests, made ahead by a thread.

Migrating a new schema (17 files, one transaction each) costs about 0.5 s on
an idle machine and 2 s when it is busy; dropping one 0.1-0.5 s. A test
mostly waits on sockets and the database, so one thread migrates the next
schemas and another drops used ones while tests run: a test takes a ready
schema and gives it back, and neither step waits for DDL.

Each schema still serves exactly one test and is made by ``migrate()`` from
nothing, so a test sees what a node would have made on a fresh schema.

Why not ``CREATE DATABASE ... TEMPLATE`` (a per-test copy of a migrated
database): on PostgreSQL 15 every ``DROP DATABASE`` forces a checkpoint of
the whole shared server. Measured under load, creating a copy took 1.5 s and
dropping one 4 s (median; up to 23 s), against 1.9 s and 0.4 s for a
migrated schema, and the checkpoints slow every other user of the server.
"""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import Callable

from protocol.harness.server import pg_execute, with_search_path

# Enough to cover a burst of short tests; each ready schema is a few hundred
# kB of catalog rows.
AHEAD = 4
# A migration is mostly the server's CPU (0.25 s of DDL) and round trips; two
# at once keep up with tests shorter than one migration on this 2-core host.
MAKERS = 2


class SchemaPool:
    """``take()`` a new migrated schema's name; ``give_back()`` it after the test."""

    def __init__(self, dsn: str, migrate: Callable[[str], None], prefix: str = "t_") -> None:
        self._dsn = dsn
        self._migrate = migrate
        self._prefix = prefix
        self._ready: queue.Queue[str] = queue.Queue(maxsize=AHEAD)
        self._used: queue.Queue[str | None] = queue.Queue()
        self._closing = threading.Event()
        self._failure: BaseException | None = None
        self._drop_failures: list[BaseException] = []
        self._makers = [
            threading.Thread(target=self._make_ahead, name=f"schema-maker-{i}", daemon=True)
            for i in range(MAKERS)
        ]
        self._dropper = threading.Thread(target=self._drop_used, name="schema-dropper", daemon=True)
        for thread in [*self._makers, self._dropper]:
            thread.start()

    def take(self) -> str:
        while True:
            try:
                return self._ready.get(timeout=0.5)
            except queue.Empty:
                if not any(maker.is_alive() for maker in self._makers):
                    raise RuntimeError("making test schemas failed") from self._failure

    def give_back(self, schema: str) -> None:
        self._used.put(schema)

    def url(self, schema: str) -> str:
        return with_search_path(self._dsn, schema)

    def close(self) -> None:
        """Stop making schemas, drop every one left, and report failed drops."""
        self._closing.set()
        for maker in self._makers:
            maker.join()
        while not self._ready.empty():
            self._used.put(self._ready.get())
        self._used.put(None)
        self._dropper.join()
        if self._drop_failures:
            raise RuntimeError(
                f"{len(self._drop_failures)} test schemas could not be dropped"
            ) from self._drop_failures[0]

    def _new_schema(self) -> str:
        schema = f"{self._prefix}{secrets.token_hex(6)}"
        pg_execute(self._dsn, f"CREATE SCHEMA {schema}")
        # Not waiting for each migration's commit to reach the disk spares the
        # busy machine 17 fsyncs; the tests' own connections keep the default.
        self._migrate(self.url(schema) + "&synchronous_commit=off")
        return schema

    def _make_ahead(self) -> None:
        try:
            while not self._closing.is_set():
                schema = self._new_schema()
                while True:
                    try:
                        self._ready.put(schema, timeout=0.2)
                        break
                    except queue.Full:
                        if self._closing.is_set():
                            self._used.put(schema)
                            return
        except BaseException as exc:  # reported by take(), to the test that waits
            self._failure = exc

    def _drop_used(self) -> None:
        while (schema := self._used.get()) is not None:
            try:
                pg_execute(self._dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            except Exception as exc:
                self._drop_failures.append(exc)
