"""Who is busy with which call, shared by every node (issue 13).

On one node the ``CallRegistry`` in memory decides who is busy. With several
nodes the callee may be in a call led by another node, so the decision needs
one place every node sees, inside the decision itself: the ``call_claims``
table (one row per busy user, its primary key the arbiter).

Why a claims table and not a query for "an active call of the user": the
query alone cannot stop two calls started at the same moment on two nodes
from both finding the user free (neither sees the other's uncommitted
call). An insert on the user's key can: the second waits for the first's
row lock, then finds the user taken. Exactly one call rings.

How it holds:
- A call starts in ONE transaction (``start``): it claims the caller (refused:
  ``CallerBusy``, nothing is written), then each callee in user-id order (no
  deadlock between two starts), builds the call from who turned out busy
  (``build``, pure), gives back the claims the call does not hold (a ringing
  group invitation holds nobody) and inserts it. So the claims and the
  stored call commit together or not at all.
- A claim is taken over when its call's node lease has run out (the leader
  died; ``storage.leases``) or its call is stored as ended: a dead node
  never leaves anyone busy, and neither does a release that failed.
- Releases ride in the transaction that stores the transition (``save``).
- Every write here goes through ``Database.write`` in the call actor's task,
  so it is fenced by the call's lease (``storage.fence``): a leader that lost
  its call can neither claim nor release for it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from storage.sql.database import Database
from storage.sql.dialect import Dialect
from storage.sql.statements import Execute, Fetch, FetchOne, Op

from .calls import CallRecord, save_op

LEASE_PREFIX = "call:"  # a call's lease in room_leases: "call:<call id>"


class CallerBusy(Exception):
    """The caller is in another call: nothing was claimed or stored."""


def _claim_sql(d: Dialect) -> str:
    return (
        "INSERT INTO call_claims (user_id, call_id, node_key) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE"
        " SET call_id = excluded.call_id, node_key = excluded.node_key"
        " WHERE call_claims.call_id = excluded.call_id"
        "  OR NOT EXISTS (SELECT 1 FROM node_leases n WHERE n.node_key = call_claims.node_key"
        f"   AND n.expires_at >= {d.now_ms()})"
        "  OR EXISTS (SELECT 1 FROM calls c WHERE c.id = call_claims.call_id"
        "   AND c.state = 'ended')"
        " RETURNING user_id"
    )


def _claim(d: Dialect, call_id: str, node_key: str, users: Sequence[str]) -> Op[set[str]]:
    """Claim ``users`` for ``call_id``, in user-id order; the ones it now holds."""
    sql = _claim_sql(d)
    held: set[str] = set()
    for user in sorted(set(users)):
        row = yield FetchOne(sql, (user, call_id, node_key))
        if row is not None:
            held.add(user)
    return held


def _release(d: Dialect, call_id: str, users: Collection[str] | None) -> Op[None]:
    if users is None:
        yield Execute("DELETE FROM call_claims WHERE call_id = ?", (call_id,))
    elif users:
        yield Execute(
            f"DELETE FROM call_claims WHERE call_id = ? AND {d.in_list('user_id')}",
            (call_id, d.array(sorted(users))),
        )


Built = tuple[CallRecord, set[str]]  # the call to store, and the users it holds


def _start(
    d: Dialect,
    call_id: str,
    node_key: str,
    caller: str,
    callees: Sequence[str],
    build: Callable[[set[str]], Built],
) -> Op[CallRecord]:
    got = yield from _claim(d, call_id, node_key, [caller])
    if caller not in got:
        raise CallerBusy(caller)  # the transaction rolls back: nothing claimed
    got |= yield from _claim(d, call_id, node_key, callees)
    record, keep = build({u for u in callees if u not in got})
    yield from _release(d, call_id, got - keep)
    yield from save_op(record, None, insert=True)
    return record


def _save(
    d: Dialect, record: CallRecord, touched: Sequence[str], release: Collection[str] | None
) -> Op[None]:
    yield from save_op(record, touched, insert=False)
    yield from _release(d, record.id, release)


def _orphans(d: Dialect, limit: int) -> Op[list[str]]:
    rows = yield Fetch(
        "SELECT c.id FROM calls c WHERE c.state <> 'ended' AND NOT EXISTS ("
        " SELECT 1 FROM room_leases l JOIN node_leases n ON n.node_key = l.node_key"
        f" WHERE l.room_id = '{LEASE_PREFIX}' || c.id AND n.expires_at >= {d.now_ms()})"
        " ORDER BY c.id LIMIT ?",
        (limit,),
    )
    return [str(r[0]) for r in rows]


class CallClaims:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(
        self,
        call_id: str,
        node_key: str,
        caller: str,
        callees: Sequence[str],
        build: Callable[[set[str]], Built],
    ) -> CallRecord:
        """Claim, decide who is busy, store the call: one transaction.

        ``build`` gets the callees found busy and returns the call and the
        users it holds. Raises ``CallerBusy`` (nothing written)."""
        d = self.db.dialect
        return await self.db.write(_start(d, call_id, node_key, caller, callees, build))

    async def claim(self, call_id: str, node_key: str, user: str) -> bool:
        """Make ``user`` busy with ``call_id`` (a group call's join); False if
        another live call has them."""
        held = await self.db.write(_claim(self.db.dialect, call_id, node_key, [user]))
        return user in held

    async def save(
        self, record: CallRecord, touched: Sequence[str], release: Collection[str] | None
    ) -> None:
        """Store a transition and drop the claims of ``release`` (None: all of the call)."""
        await self.db.write(_save(self.db.dialect, record, touched, release))

    async def release(self, call_id: str, users: Collection[str] | None) -> None:
        await self.db.write(_release(self.db.dialect, call_id, users))

    async def holder(self, user: str) -> str | None:
        """The call ``user`` is claimed by, if any (live or not: tests, diagnostics)."""
        value = await self.db.fetchval("SELECT call_id FROM call_claims WHERE user_id = ?", (user,))
        return None if value is None else str(value)

    async def orphans(self, limit: int = 100) -> list[str]:
        """Unfinished calls whose leader is gone (no live holder of their lease)."""
        return await self.db.read(_orphans(self.db.dialect, limit))
