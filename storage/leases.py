"""Node and room leases (issue 13): exactly one node writes a room at a time.

Why leases in PostgreSQL rather than in Redis or as advisory locks:
- The fencing check must sit INSIDE the transaction that writes the room's
  rows, so the token and the rows are in the same database. A Redis lease
  would still need its epoch copied here and checked here.
- A session-level advisory lock is released when the holder's connection
  closes, which a killed node does at once, but a paused node (SIGSTOP, a
  long GC, a partition) keeps its connection and so the lock: its rooms
  would be frozen for as long as it is paused. A lease expires by time.

How it holds:
- Every node renews ``node_leases`` (its key, fresh at every start) every
  quarter of ``NODE_LEASE_SECONDS``, on the database's clock.
- ``claim`` takes a room if nobody holds it, or if its holder's node lease
  has run out; the ``token`` then grows by one. A live holder keeps it.
- Every write of the holder first locks its ``room_leases`` row with
  ``(room, token)`` in the same transaction (``fence_op``); a taker's
  ``claim`` updates that row, so the two serialise on the row lock: either
  the old holder's write commits before the takeover (and the new holder then
  reads ``last_seq`` after it), or the write finds the token changed and
  stores nothing (``Fenced``). No duplicate seq, no gap, no ack for what is
  not stored.
- A node's clock plays no part: expiry is compared with the database's.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from storage.sql.database import Database
from storage.sql.dialect import Dialect
from storage.sql.statements import Execute, FetchOne, Op


@dataclass(frozen=True, slots=True)
class Holder:
    node_key: str
    token: int


def _renew(d: Dialect, node_key: str, lease_ms: int) -> Generator[Any, Any, bool]:
    now = d.now_ms()
    row = yield FetchOne(
        f"SELECT expires_at >= {now} FROM node_leases WHERE node_key = ?", (node_key,)
    )
    yield Execute(
        f"INSERT INTO node_leases (node_key, expires_at) VALUES (?, {now} + ?)"
        " ON CONFLICT (node_key) DO UPDATE SET expires_at = excluded.expires_at",
        (node_key, lease_ms),
    )
    # True: the lease was still running (or this is the first renewal).
    return row is None or bool(row[0])


def _claim(d: Dialect, room_id: str, node_key: str) -> Generator[Any, Any, Holder]:
    row = yield FetchOne(
        "INSERT INTO room_leases (room_id, node_key, token) VALUES (?, ?, 1)"
        " ON CONFLICT (room_id) DO UPDATE"
        " SET node_key = excluded.node_key, token = room_leases.token + 1"
        " WHERE room_leases.node_key <> excluded.node_key AND NOT EXISTS ("
        "   SELECT 1 FROM node_leases n WHERE n.node_key = room_leases.node_key"
        f"  AND n.expires_at >= {d.now_ms()})"
        " RETURNING token",
        (room_id, node_key),
    )
    if row is not None:
        return Holder(node_key, int(row[0]))
    row = yield FetchOne("SELECT node_key, token FROM room_leases WHERE room_id = ?", (room_id,))
    assert row is not None  # the insert conflicted on it
    return Holder(str(row[0]), int(row[1]))


def _take_slot(d: Dialect, key: str, node_key: str) -> Generator[Any, Any, int | None]:
    # Unlike a room's lease, a slot is taken anew by its own holder too: each
    # take has its own token, so releasing an older take never frees a newer.
    row = yield FetchOne(
        "INSERT INTO room_leases (room_id, node_key, token) VALUES (?, ?, 1)"
        " ON CONFLICT (room_id) DO UPDATE"
        " SET node_key = excluded.node_key, token = room_leases.token + 1"
        " WHERE room_leases.node_key = excluded.node_key OR NOT EXISTS ("
        "   SELECT 1 FROM node_leases n WHERE n.node_key = room_leases.node_key"
        f"  AND n.expires_at >= {d.now_ms()})"
        " RETURNING token",
        (key, node_key),
    )
    return None if row is None else int(row[0])


def _release(node_key: str) -> Op[None]:
    # The rows stay, holderless: a token never goes back, so a write fenced
    # with an old token can never match a later holder's.
    yield Execute("UPDATE room_leases SET node_key = '' WHERE node_key = ?", (node_key,))
    yield Execute("DELETE FROM node_leases WHERE node_key = ?", (node_key,))


class Leases:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def renew(self, node_key: str, lease_seconds: float) -> bool:
        """Push this node's lease forward; False if it had run out meanwhile
        (the node was paused or cut off: its rooms may have moved)."""
        return await self.db.write(_renew(self.db.dialect, node_key, int(lease_seconds * 1000)))

    async def claim(self, room_id: str, node_key: str) -> Holder:
        """Take the room if free or abandoned; whoever holds it afterwards."""
        return await self.db.write(_claim(self.db.dialect, room_id, node_key))

    async def holder(self, room_id: str) -> Holder | None:
        row = await self.db.fetchone(
            "SELECT node_key, token FROM room_leases WHERE room_id = ?", (room_id,)
        )
        return None if row is None else Holder(str(row[0]), int(row[1]))

    async def alive(self, node_key: str) -> bool:
        value = await self.db.fetchval(
            "SELECT 1 FROM node_leases WHERE node_key = ?"
            f" AND expires_at >= {self.db.dialect.now_ms()}",
            (node_key,),
        )
        return value is not None

    async def take_slot(self, key: str, node_key: str) -> int | None:
        """A lease held only while something runs (a room's AI generation):
        its token if this node has it now, None if a live node holds it."""
        return await self.db.write(_take_slot(self.db.dialect, key, node_key))

    async def free_slot(self, key: str, node_key: str, token: int) -> None:
        """Give back the slot taken with ``token`` (a later take keeps it)."""
        await self.db.execute(
            "UPDATE room_leases SET node_key = '' WHERE room_id = ? AND node_key = ? AND token = ?",
            (key, node_key, token),
        )

    async def release(self, node_key: str) -> None:
        """A graceful stop: this node's rooms are free at once, not after the lease."""
        await self.db.write(_release(node_key))
