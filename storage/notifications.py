"""Per-user notifications and user roles (issue 15, part 2).

Written once for both databases on the main store's ``Database``.

Rules:
- A notification belongs to one user and is read, counted and marked by that
  user only: every statement is keyed by ``user_id``, so another user's id
  is simply not found (nothing tells it exists).
- Ids are time-ordered (``new_notification_id``): the list pages by id, newest first,
  with the last id of a page as the cursor of the next.
- An announcement to many users is one statement (``INSERT ... SELECT``) and
  one id shared by every recipient's row, so its live frame is encoded once.
  Users who sign up later do not get it.
- A plan's users are those whose plan is in force at ``now`` by the rule of
  ``bridge.billing.plans.entitlement`` (active status, period not over; a
  Stripe subscription not being cancelled keeps its renewal grace); the free
  plan is everyone else. ``PlanRule`` carries that rule's parameters so this
  module imports nothing from the bridge.
- Pruning (``prune_read``, ``cap_per_user``, run by the node's
  ``NotificationSweeper``): read notifications older than the retention go,
  and a user keeps at most the newest N rows whatever their state (an unread
  one that old counts no more). Both delete in batches, each its own short
  transaction, so a large backlog never holds a long lock.
- Marking read is all or nothing: when one of the ids is not the user's,
  nothing changes and the unknown ids come back.
- Roles are rows of ``user_roles``, granted and revoked by the operator's CLI
  only; the public API never writes them.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from storage.sql.database import Database
from storage.sql.dialect import Dialect
from storage.sql.schema import fold
from storage.sql.statements import Execute, Fetch, FetchOne, Op

from .base import Store, now_ms

ADMIN = "admin"
# Past every real id: the cursor of the first page.
FIRST_PAGE = "~"

# Ids made by this process: the ms clock, then a counter, so two made in the
# same millisecond still sort in the order they were made (new_time_id's
# random tail would not), then random bits against other nodes.
_counter = itertools.count()


def new_notification_id() -> str:
    return f"n_{now_ms():012x}{next(_counter) % 2**32:08x}{secrets.token_hex(6)}"


_COLUMNS = "id, kind, title, body, data, created_at, read_at"


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: int
    read_at: int | None = None


@dataclass(frozen=True, slots=True)
class NewNotification:
    """What a notification says; the store gives it its recipients."""

    id: str
    kind: str
    title: str
    created_at: int
    body: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def stored(self) -> Notification:
        return Notification(self.id, self.kind, self.title, self.body, self.data, self.created_at)


@dataclass(frozen=True, slots=True)
class PlanRule:
    """Who is on a plan at ``now`` (see the module rules)."""

    now: int
    active_statuses: Collection[str]
    grace_ms: int
    # Paid plans that exist: a subscription to a plan since removed counts as free.
    paid_plans: Collection[str]


@dataclass(frozen=True, slots=True)
class ReadResult:
    unread: int  # the user's unread count after the change
    marked: int = 0  # rows that went from unread to read
    unknown: tuple[str, ...] = ()  # ids that are not the user's: nothing was marked


def _row(r: Sequence[Any]) -> Notification:
    nid, kind, title, body, data, created_at, read_at = r
    return Notification(nid, kind, title, body, json.loads(data), int(created_at), read_at)


def _data(n: NewNotification) -> str:
    return json.dumps(n.data, separators=(",", ":"), sort_keys=True)


def _values(n: NewNotification) -> tuple[Any, ...]:
    return (n.id, n.kind, n.title, n.body, _data(n), n.created_at)


def _paid_in_force(d: Dialect, rule: PlanRule) -> tuple[str, tuple[Any, ...]]:
    """SELECT of (user_id, plan) for paid plans in force, and its parameters."""
    sql = (
        "SELECT s.user_id, s.plan FROM billing_subscriptions s"
        f" WHERE {d.in_list('s.status')} AND {d.in_list('s.plan')}"
        " AND ? < s.period_end + CASE WHEN s.provider = 'stripe'"
        " AND s.cancel_at_period_end = FALSE THEN ? ELSE 0 END"
    )
    return sql, (
        d.array(sorted(rule.active_statuses)),
        d.array(sorted(rule.paid_plans)),
        rule.now,
        rule.grace_ms,
    )


_INSERT = (
    "INSERT INTO notifications (user_id, id, kind, title, body, data, created_at)"
    " SELECT u.id, ?, ?, ?, ?, ?, ? FROM users u"
)


def _to_plan(d: Dialect, n: NewNotification, plan: str, rule: PlanRule) -> Op[list[str]]:
    paid, params = _paid_in_force(d, rule)
    if plan in rule.paid_plans:
        where = f" JOIN ({paid}) p ON p.user_id = u.id WHERE p.plan = ?"
        args: tuple[Any, ...] = (*_values(n), *params, plan)
    else:  # free: everyone without a paid plan in force
        where = f" WHERE u.id NOT IN (SELECT user_id FROM ({paid}) p)"
        args = (*_values(n), *params)
    rows = yield Fetch(_INSERT + where + " RETURNING user_id", args)
    return [r[0] for r in rows]


def _mark_read(d: Dialect, user_id: str, ids: list[str], at: int) -> Op[ReadResult]:
    rows = yield Fetch(
        f"SELECT id FROM notifications WHERE user_id = ? AND {d.in_list('id')}",
        (user_id, d.array(ids)),
    )
    found = {r[0] for r in rows}
    if unknown := tuple(i for i in ids if i not in found):
        count = yield FetchOne(_UNREAD, (user_id,))
        return ReadResult(int(count[0]), unknown=unknown)
    marked = yield Execute(
        "UPDATE notifications SET read_at = ?"
        f" WHERE user_id = ? AND {d.in_list('id')} AND read_at IS NULL",
        (at, user_id, d.array(ids)),
    )
    count = yield FetchOne(_UNREAD, (user_id,))
    return ReadResult(int(count[0]), marked)


_UNREAD = "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND read_at IS NULL"


class NotificationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ----- notifications ----------------------------------------------------------

    async def add(self, user_ids: Sequence[str], n: NewNotification) -> list[str]:
        """Give ``n`` to these users (unknown ids are skipped); returns who got it."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return []
        d = self._db.dialect
        rows = await self._db.fetch(
            f"{_INSERT} WHERE {d.in_list('u.id')} RETURNING user_id",
            (*_values(n), d.array(ids)),
            write=True,
        )
        return [r[0] for r in rows]

    async def add_to_everyone(self, n: NewNotification) -> int:
        """Give ``n`` to every user there is now; returns how many."""
        return await self._db.execute(_INSERT, _values(n))

    async def add_to_plan(self, n: NewNotification, plan: str, rule: PlanRule) -> list[str]:
        """Give ``n`` to the users on ``plan`` at ``rule.now``; returns who got it."""
        return await self._db.write(_to_plan(self._db.dialect, n, plan, rule))

    async def page(
        self, user_id: str, *, before: str = FIRST_PAGE, limit: int, unread_only: bool = False
    ) -> list[Notification]:
        """Newest first, ids strictly below ``before``."""
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        unread = " AND read_at IS NULL" if unread_only else ""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM notifications WHERE user_id = ? AND id < ?{unread}"
            " ORDER BY id DESC LIMIT ?",
            (user_id, before, limit),
        )
        return [_row(r) for r in rows]

    async def unread_count(self, user_id: str) -> int:
        return int(await self._db.fetchval(_UNREAD, (user_id,)))

    async def mark_read(self, user_id: str, ids: Sequence[str], at: int) -> ReadResult:
        """Mark these of the user's notifications read, all or nothing (see the rules)."""
        wanted = list(dict.fromkeys(ids))
        return await self._db.write(_mark_read(self._db.dialect, user_id, wanted, at))

    async def mark_all_read(self, user_id: str, at: int) -> ReadResult:
        marked = await self._db.execute(
            "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL",
            (at, user_id),
        )
        return ReadResult(0, marked)

    # ----- roles ------------------------------------------------------------------

    # ----- pruning ------------------------------------------------------------------

    async def prune_read(self, created_before: int, batch: int) -> int:
        """Delete up to ``batch`` read notifications created before ``created_before``."""
        return await self._db.execute(
            "DELETE FROM notifications WHERE (user_id, id) IN ("
            " SELECT user_id, id FROM notifications"
            " WHERE read_at IS NOT NULL AND created_at < ? LIMIT ?)",
            (created_before, batch),
        )

    async def cap_per_user(self, keep: int, batch: int) -> int:
        """Delete up to ``batch`` rows beyond each user's newest ``keep``."""
        return await self._db.execute(
            "DELETE FROM notifications WHERE (user_id, id) IN ("
            " SELECT user_id, id FROM ("
            "  SELECT user_id, id,"
            "   ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY id DESC) AS rank"
            "  FROM notifications WHERE user_id IN ("
            "   SELECT user_id FROM notifications GROUP BY user_id HAVING COUNT(*) > ?)"
            " ) ranked WHERE rank > ? LIMIT ?)",
            (keep, keep, batch),
        )

    async def oldest_read(self) -> int | None:
        """When the oldest read notification was created (the next to expire)."""
        value = await self._db.fetchval(
            "SELECT MIN(created_at) FROM notifications WHERE read_at IS NOT NULL"
        )
        return None if value is None else int(value)

    async def user_id_by_email(self, email: str) -> str | None:
        found = await self._db.fetchval("SELECT id FROM users WHERE email_lc = ?", (fold(email),))
        return None if found is None else str(found)

    async def grant(self, user_id: str, role: str, at: int) -> bool:
        """True when the user did not have the role before."""
        added = await self._db.execute(
            "INSERT INTO user_roles (user_id, role, granted_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, role) DO NOTHING",
            (user_id, role, at),
        )
        return added > 0

    async def revoke(self, user_id: str, role: str) -> bool:
        """True when the user had the role."""
        removed = await self._db.execute(
            "DELETE FROM user_roles WHERE user_id = ? AND role = ?", (user_id, role)
        )
        return removed > 0

    async def has_role(self, user_id: str, role: str) -> bool:
        found = await self._db.fetchval(
            "SELECT 1 FROM user_roles WHERE user_id = ? AND role = ?", (user_id, role)
        )
        return found is not None

    async def with_role(self, user_ids: Collection[str], role: str) -> set[str]:
        """Those of ``user_ids`` who have ``role`` now."""
        if not user_ids:
            return set()
        d = self._db.dialect
        rows = await self._db.fetch(
            f"SELECT user_id FROM user_roles WHERE role = ? AND {d.in_list('user_id')}",
            (role, d.array(user_ids)),
        )
        return {r[0] for r in rows}


def notification_store(store: Store) -> NotificationStore:
    return NotificationStore(store.db)
