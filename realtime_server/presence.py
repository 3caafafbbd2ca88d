"""Presence (online / last seen) and the room-member cache typing uses.

Rules:
- A user is online while any of their devices is connected to this node.
  When the last one leaves, they stay online for ``presence_grace`` seconds:
  a reconnect within it (a flaky network, an app switching sockets) is not a
  change anyone hears about. After it, they are offline with ``last_seen``,
  which is also stored.
- Connect and disconnect hooks are synchronous and touch only memory; every
  database read happens in a background task, and only on a transition.
- A transition is told to the users who share a room with the user, or are
  their contacts, as the user's visibility allows (everyone / contacts /
  nobody), and only to their sessions that asked about the user with
  ``presence.get`` (a subscription, like XMPP's: clients ask for the people
  on screen, so nobody pays for presence they never show). At most one
  broadcast per user per ``presence_throttle`` seconds; a change inside the
  window is sent at its end, and only the latest state.
- ``presence.get`` (``realtime_server.handlers_presence``) applies the same
  visibility rule, so what a client can ask is exactly what it could have been told.

Several nodes (issue 13): ``realtime_server.cluster.presence`` keeps which
users the other nodes hold; online means held here or there, and each node
tells its own watchers (see that module for the protocol and who stores
last_seen). Single node: the state lives in this process, as before.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from actors.supervision import ServiceNursery
from protocol import codec
from protocol.frames_presence import (
    Presence,
    PresenceState,
)
from realtime_server.hub import Hub
from realtime_server.session import Session
from realtime_server.wsframes import binary_frame
from storage.base import Store, now_ms
from storage.contacts import contact_ids, contacts_store
from storage.errors import StoreError
from storage.presence import PresenceSettings, presence_store

if TYPE_CHECKING:
    from realtime_server.cluster.presence import ClusterPresence

log = logging.getLogger(__name__)

MEMBERS_CACHE_MAX = 10_000
# Subscriptions one session may hold; users asked about beyond it are
# answered but not followed.
SUBSCRIPTIONS_MAX = 1000


async def _contacts_of(store: Store, user_id: str) -> set[str]:
    """The people in ``user_id``'s contacts: those "contacts" visibility shows to."""
    return set(await contact_ids(store, user_id))


def may_see(visibility: str, *, is_contact: bool, shares_room: bool) -> bool:
    """Whether a viewer may see a user's presence. Pure: the rule in one place."""
    if visibility == "nobody":
        return False
    if visibility == "contacts":
        return is_contact
    return is_contact or shares_room


class RoomMembers:
    """Who is in a room, cached in memory: typing must not query the database.

    An entry lives ``ttl`` seconds; group changes call ``invalidate`` so a
    removed member stops seeing typing at once.
    """

    def __init__(self, store: Store, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()

    async def members(self, room_id: str) -> frozenset[str]:
        hit = self._cache.get(room_id)
        now = trio.current_time()
        if hit is not None and hit[0] > now:
            return hit[1]
        room = await self._store.get_room(room_id)
        found = frozenset(m.user_id for m in room.members) if room is not None else frozenset()
        self._cache[room_id] = (now + self._ttl, found)
        self._cache.move_to_end(room_id)
        while len(self._cache) > MEMBERS_CACHE_MAX:
            self._cache.popitem(last=False)
        return found

    def cached(self, room_id: str) -> frozenset[str] | None:
        hit = self._cache.get(room_id)
        return None if hit is None else hit[1]

    def invalidate(self, room_id: str) -> None:
        self._cache.pop(room_id, None)


@dataclass(slots=True, eq=False)
class _UserState:
    user_id: str
    sessions: int = 0
    online: bool = False  # what the world is told, after the grace period
    last_seen: int | None = None
    grace: trio.CancelScope | None = None
    # Throttling: when the next broadcast may go, and whether one is queued.
    next_send: float = 0.0
    flush_queued: bool = False
    sent_online: bool | None = None


class PresenceTracker:
    def __init__(
        self,
        store: Store,
        hub: Hub,
        *,
        grace: float,
        throttle: float,
        cluster: ClusterPresence | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._cluster = cluster  # the other nodes' part; None on a single node
        self._clock = clock  # the node's (realtime_server.base.clock): last seen
        self._store = store
        self._presence = presence_store(store)
        self._hub = hub
        self._grace = grace
        self._throttle = throttle
        self._users: dict[str, _UserState] = {}
        # Who follows whom: target user -> sessions, and session -> targets.
        self._watchers: dict[str, set[Session]] = {}
        self._following: dict[Session, set[str]] = {}
        # Timers and transitions: each runs again from its start after a crash
        # (the budget of actors.supervision) and first checks it is still due.
        self._tasks = ServiceNursery("presence")
        self.broadcasts: Counter[str] = Counter()  # per user, for tests and statistics

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._tasks.serve(task_status=task_status)

    # ----- hooks (synchronous, memory only) ---------------------------------

    def session_up(self, user_id: str) -> None:
        st = self._users.get(user_id)
        if st is None:
            st = self._users[user_id] = _UserState(user_id)
        st.sessions += 1
        if st.grace is not None:
            # Back within the grace period: nobody was told they left.
            st.grace.cancel()
            st.grace = None
        if self._cluster is not None and st.sessions == 1:
            self._cluster.up(user_id)  # held (again) with a session
        if not st.online:
            st.online = True
            self._changed(st)

    def session_closed(self, session: Session) -> None:
        for target in self._following.pop(session, ()):
            watchers = self._watchers.get(target)
            if watchers is not None:
                watchers.discard(session)
                if not watchers:
                    del self._watchers[target]
        self.session_down(session.user_id)

    def subscribe(self, session: Session, user_ids: list[str]) -> None:
        following = self._following.setdefault(session, set())
        for user in user_ids:
            if len(following) >= SUBSCRIPTIONS_MAX:
                return
            following.add(user)
            self._watchers.setdefault(user, set()).add(session)

    def session_down(self, user_id: str) -> None:
        st = self._users.get(user_id)
        if st is None or st.sessions <= 0:
            return
        st.sessions -= 1
        if st.sessions == 0 and self._cluster is not None:
            self._cluster.idle(user_id)  # still held, through the grace period
        if st.sessions == 0 and st.grace is None and self._tasks.running:
            st.grace = trio.CancelScope()
            self._tasks.start_soon(self._go_offline_later, st, st.grace)

    # ----- transitions -------------------------------------------------------

    async def _go_offline_later(self, st: _UserState, scope: trio.CancelScope) -> None:
        if st.grace is not scope:
            return  # back in time, or run again after a crash past the wait below
        with scope:
            await trio.sleep(self._grace)
        if scope.cancelled_caught or st.grace is not scope:
            return
        st.grace = None
        st.online = False
        st.last_seen = self._clock()
        if self._cluster is not None and self._cluster.down(st.user_id, st.last_seen):
            # Still online through another node: nothing to tell or store;
            # whichever node is left last does both.
            self._forget_if_idle(st)
            return
        # Stored before anyone is told, so a presence.get after the push (which
        # may read storage once this state is forgotten) agrees with it.
        try:
            await self._presence.set_last_seen(st.user_id, st.last_seen)
        except StoreError as exc:
            log.warning("could not store last_seen of %s: %r", st.user_id, exc)
        if st.sessions == 0 and st.grace is None and not st.online:
            self._changed(st)

    def _changed(self, st: _UserState) -> None:
        if not self._tasks.running or st.flush_queued:
            return  # a queued flush sends the latest state anyway
        st.flush_queued = True
        delay = max(0.0, st.next_send - trio.current_time())
        self._tasks.start_soon(self._flush, st, delay)

    async def _flush(self, st: _UserState, delay: float) -> None:
        if delay > 0:
            await trio.sleep(delay)
        st.flush_queued = False
        online = self._online(st)
        if st.sent_online == online:
            self._forget_if_idle(st)
            return
        st.sent_online = online
        st.next_send = trio.current_time() + self._throttle
        state = PresenceState(st.user_id, online, None if online else st.last_seen)
        try:
            await self._broadcast(state)
        except StoreError as exc:
            log.warning("presence of %s not broadcast: %r", st.user_id, exc)
        self._forget_if_idle(st)

    def _forget_if_idle(self, st: _UserState) -> None:
        # Offline users are kept only while a throttle window could still
        # matter; the database has their last_seen.
        if (
            not self._online(st)
            and st.sessions == 0
            and st.grace is None
            and not st.flush_queued
            and self._users.get(st.user_id) is st
        ):
            self._tasks.start_if_running(self._drop_after_window, st)

    async def _drop_after_window(self, st: _UserState) -> None:
        await trio.sleep(max(0.0, st.next_send - trio.current_time()))
        if not self._online(st) and st.sessions == 0 and not st.flush_queued and st.grace is None:
            if self._users.get(st.user_id) is st:
                del self._users[st.user_id]

    async def _broadcast(self, state: PresenceState) -> None:
        user = state.user
        if user not in self._watchers:
            # Nobody here asked: no audience to read (with several nodes,
            # every node hears every transition; only watchers' nodes pay).
            self.broadcasts[user] += 1
            return
        settings = (await self._presence.presence_settings([user]))[user]
        if settings.visibility == "nobody":
            return
        contacts = await _contacts_of(self._store, user)
        if settings.visibility == "contacts":
            audience = contacts
        else:
            audience = contacts | await self._presence.room_peers(user)
        audience.discard(user)
        # A block, either way, hides presence too.
        audience -= await contacts_store(self._store).blocked_among(user, list(audience))
        data = binary_frame(codec.encode(Presence(d=state)))
        for session in list(self._watchers.get(user, ())):
            if session.user_id in audience:
                session.push(data)
        self.broadcasts[user] += 1

    # ----- queries -----------------------------------------------------------

    def is_online(self, user_id: str) -> bool:
        st = self._users.get(user_id)
        if st is not None and st.online:
            return True
        return self._cluster is not None and self._cluster.elsewhere(user_id)

    def _online(self, st: _UserState) -> bool:
        """Held here, or by another node."""
        return st.online or (self._cluster is not None and self._cluster.elsewhere(st.user_id))

    # ----- the other nodes (cluster.presence.PresenceListener) -----------------------

    def remote_online(self, user_id: str) -> None:
        st = self._users.get(user_id)
        if st is not None and st.online:
            return  # held here too: the world already knows
        if st is None and user_id in self._watchers:
            st = self._users[user_id] = _UserState(user_id)
        if st is not None:
            self._changed(st)

    def remote_offline(self, user_id: str, last_seen: int, store: bool) -> None:
        st = self._users.get(user_id)
        if st is not None and st.online:
            return  # still held here
        if store:
            self._tasks.start_if_running(self._store_last_seen, user_id, last_seen)
        if st is None and user_id in self._watchers:
            st = self._users[user_id] = _UserState(user_id)
        if st is not None:
            st.last_seen = max(st.last_seen or 0, last_seen)
            self._changed(st)

    async def _store_last_seen(self, user_id: str, at: int) -> None:
        try:
            await self._presence.set_last_seen(user_id, at)
        except StoreError as exc:
            log.warning("could not store last_seen of %s: %r", user_id, exc)

    async def lookup(self, viewer: str, user_ids: list[str]) -> list[PresenceState]:
        """The presence of each of ``user_ids`` that ``viewer`` may see, in order."""
        wanted = list(dict.fromkeys(user_ids))
        settings: dict[str, PresenceSettings] = await self._presence.presence_settings(wanted)
        peers = await self._presence.room_peers(viewer)
        social = contacts_store(self._store)
        blocked = await social.blocked_among(viewer, wanted)
        found = []
        for user in wanted:
            s = settings[user]
            if user != viewer:
                if user in blocked or s.visibility == "nobody":
                    continue
                shares = user in peers
                # Whether the viewer is in the *user's* contacts: asked only
                # when it decides (one primary-key lookup).
                known = False
                if s.visibility == "contacts" or not shares:
                    known = await social.is_contact(user, viewer)
                if not may_see(s.visibility, is_contact=known, shares_room=shares):
                    continue
            st = self._users.get(user)
            if self.is_online(user):
                found.append(PresenceState(user, True))
            else:
                last = st.last_seen if st is not None and st.last_seen else s.last_seen
                if self._cluster is not None:
                    # Another node's down may be heard before its write lands.
                    heard = self._cluster.recent_last_seen(user)
                    if heard is not None and (last is None or heard > last):
                        last = heard
                found.append(PresenceState(user, False, last))
        return found

    async def set_visibility(self, user_id: str, visibility: str) -> None:
        await self._presence.set_visibility(user_id, visibility)


__all__ = [
    "PresenceTracker",
    "RoomMembers",
    "may_see",
]
