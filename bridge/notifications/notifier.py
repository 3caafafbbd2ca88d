"""Notifications: stored for their users, then pushed live (issue 15, part 2).

``Notifier`` is what the rest of the node calls when something happened to a
user (a missed call, an add to a group, a payment, a plan ending) and what
the admin announcement uses. Rules:

- Stored first, pushed second: a ``notify.new`` frame always names a row the
  user can list and mark read; someone offline finds it in the list.
- One frame per notification, encoded once for all its recipients'
  sessions (an announcement shares one id across recipients for this).
- Several nodes (issue 13): ``users`` (``cluster.users.UserChannels``) also
  reaches the users' sessions on the other nodes; counts returned are this
  node's sessions.
- It reaches sessions through two Protocols, ``Sessions`` (this node's: the
  hub) and ``Reach`` (every node's), so this domain service names nothing of
  the node; without a node (REST-only) ``Notifier.stored_only`` pushes to no one.
- Events of other features go through ``notify_quietly``: the call, the
  group change or the payment already happened, so a storage failure here
  is logged, never turned into a failure of what the user asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol

import msgspec

from protocol import codec
from protocol.frames_notify import (
    Notification,
    NotificationKind,
    NotificationRef,
    NotifyNew,
    NotifyRead,
    NotifyReadData,
)
from storage.base import Store
from storage.errors import StoreError
from storage.notifications import (
    NewNotification,
    PlanRule,
    new_notification_id,
    notification_store,
)
from storage.notifications import Notification as StoredNotification

log = logging.getLogger(__name__)


def to_wire(n: StoredNotification) -> Notification:
    return Notification(
        id=n.id,
        kind=n.kind,  # type: ignore[arg-type]  # written only from NotificationKind
        ts=n.created_at,
        title=n.title,
        body=n.body,
        ref=msgspec.convert(n.data, NotificationRef),
        read=n.read_at is not None,
    )


class Session(Protocol):
    def push(self, data: bytes) -> None: ...


class Sessions(Protocol):
    """This node's sessions of users (``realtime_server.hub.Hub``)."""

    def sessions_of(self, user_id: str) -> Iterable[Session]: ...
    def all_sessions(self) -> Iterable[Session]: ...


class Reach(Protocol):
    """Every node's sessions of users (``realtime_server.cluster.users.UserChannels``)."""

    def send(self, user_id: str, data: bytes) -> int: ...
    def send_many(self, user_ids: Collection[str], data: bytes) -> int: ...
    def send_all(self, data: bytes) -> int: ...


class _NoSessions:
    def sessions_of(self, user_id: str) -> Iterable[Session]:
        return ()

    def all_sessions(self) -> Iterable[Session]:
        return ()


class Notifier:
    def __init__(
        self,
        store: Store,
        hub: Sessions,
        frame: Callable[[bytes], bytes],
        clock: Callable[[], int],
    ) -> None:
        self.store = notification_store(store)
        self._users = store
        self._hub = hub
        self._frame = frame
        self._clock = clock
        # Every node's sessions of a user (cluster.users.UserChannels), set by
        # the node; None: this node's only, through the hub.
        self.users: Reach | None = None
        # Push to offline devices (issue 15, part 3): (user ids, kind, title,
        # body) after each stored notification; set by the node, non-blocking.
        self.offline_push: Callable[[Sequence[str], str, str, str], None] | None = None

    def _new(
        self, kind: NotificationKind, title: str, body: str, ref: NotificationRef | None
    ) -> NewNotification:
        data = msgspec.to_builtins(ref) if ref is not None else {}
        return NewNotification(new_notification_id(), kind, title, self._clock(), body, data)

    @classmethod
    def stored_only(cls, store: Store, clock: Callable[[], int]) -> Notifier:
        """Without a node (REST-only): notifications are stored, pushed to no one."""
        return cls(store, _NoSessions(), bytes, clock)

    def _push(self, n: NewNotification, sessions: Iterable[Session]) -> int:
        data = self._frame(codec.encode(NotifyNew(d=to_wire(n.stored()))))
        pushed = 0
        for session in sessions:
            session.push(data)
            pushed += 1
        return pushed

    def _push_users(self, n: NewNotification, user_ids: Sequence[str]) -> int:
        if self.users is None:
            return self._push(n, self._sessions_of(user_ids))
        data = self._frame(codec.encode(NotifyNew(d=to_wire(n.stored()))))
        return self.users.send_many(user_ids, data)

    def _sessions_of(self, user_ids: Iterable[str]) -> Iterable[Session]:
        return [s for u in user_ids for s in self._hub.sessions_of(u)]

    async def notify(
        self,
        user_ids: Sequence[str],
        kind: NotificationKind,
        title: str,
        body: str = "",
        ref: NotificationRef | None = None,
    ) -> list[str]:
        """Store for these users (unknown ids skipped), then push; returns who got it."""
        n = self._new(kind, title, body, ref)
        got = await self.store.add(user_ids, n)
        self._push_users(n, got)
        if self.offline_push is not None:  # the push dispatcher: to devices offline
            self.offline_push(got, kind, title, body)
        return got

    async def notify_quietly(
        self,
        user_ids: Sequence[str],
        kind: NotificationKind,
        title: str,
        body: str = "",
        ref: NotificationRef | None = None,
    ) -> None:
        try:
            await self.notify(user_ids, kind, title, body, ref)
        except StoreError as exc:
            log.warning("%s notification for %d users not stored: %r", kind, len(user_ids), exc)

    async def announce(
        self, title: str, text: str, plan: str | None, rule: PlanRule
    ) -> tuple[str, int, int]:
        """An announcement to everyone (``plan`` None) or one plan's users:
        (its id, users it was stored for, online sessions it was pushed to)."""
        ref = NotificationRef(plan=plan) if plan is not None else None
        n = self._new("announcement", title, text, ref)
        if plan is None:
            count = await self.store.add_to_everyone(n)
            # Everyone there is: every session here belongs to a recipient
            # (a user made after the INSERT was not there to get it, and
            # hears it live anyway, which harms nobody).
            if self.users is not None:
                data = self._frame(codec.encode(NotifyNew(d=to_wire(n.stored()))))
                return n.id, count, self.users.send_all(data)
            return n.id, count, self._push(n, self._hub.all_sessions())
        got = await self.store.add_to_plan(n, plan, rule)
        return n.id, len(got), self._push_users(n, got)

    def push_read(self, user_id: str, ids: Sequence[str], unread: int, *, all: bool) -> None:
        """The user's devices hear what was marked read, and the count after it."""
        frame = NotifyRead(d=NotifyReadData(unread=unread, ids=list(ids), all=all))
        data = self._frame(codec.encode(frame))
        if self.users is not None:
            self.users.send(user_id, data)
            return
        for session in self._hub.sessions_of(user_id):
            session.push(data)

    # ----- what happened to users, in their words ------------------------------------

    async def _name(self, user_id: str) -> str:
        try:
            user = await self._users.get_user(user_id)
        except StoreError:
            user = None
        if user is None:
            return "Someone"
        return user.display_name or user.username or "Someone"

    async def missed_call(
        self, users: Sequence[str], call_id: str, room: str, caller: str, kind: str
    ) -> None:
        name = await self._name(caller)
        ref = NotificationRef(room=room, call=call_id, user=caller, call_kind=kind)
        await self.notify_quietly(
            users, "call.missed", f"Missed {kind} call", f"{name} called you.", ref
        )

    async def added_to_group(
        self, users: Sequence[str], room: str, group_name: str, by: str
    ) -> None:
        name = await self._name(by)
        await self.notify_quietly(
            users,
            "group.added",
            f"Added to {group_name}",
            f"{name} added you to the group.",
            NotificationRef(room=room, user=by),
        )

    async def payment(
        self,
        user_id: str,
        *,
        paid: bool,
        plan: str,
        amount: int,
        currency: str,
        reason: str | None = None,
    ) -> None:
        ref = NotificationRef(plan=plan, amount=amount, currency=currency, reason=reason)
        if paid:
            await self.notify_quietly(
                [user_id],
                "payment.succeeded",
                "Payment received",
                f"Your {plan} plan is paid.",
                ref,
            )
        else:
            await self.notify_quietly(
                [user_id],
                "payment.failed",
                "Payment failed",
                f"The payment for your {plan} plan did not go through.",
                ref,
            )

    async def story_reply(self, author: str, room: str, by: str, text: str) -> None:
        name = await self._name(by)
        await self.notify_quietly(
            [author],
            "story.reply",
            "Reply to your story",
            f"{name}: {text}",
            NotificationRef(room=room, user=by),
        )

    async def plan_ending(self, user_id: str, plan: str, ends_at: int) -> None:
        await self.notify_quietly(
            [user_id],
            "plan.ending",
            f"Your {plan} plan is ending",
            "It was cancelled and falls back to the free plan at the end of the period.",
            NotificationRef(plan=plan, ends_at=ends_at),
        )
