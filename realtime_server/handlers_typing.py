"""Typing indicators: per room, throttled, expiring, cleared on disconnect.

Rules:
- Nothing here touches the database per event: membership comes from the
  ``RoomMembers`` cache (one load per room per TTL; group changes refresh it).
- Only members of the room may type there, and only they hear it; the typer's
  own devices are not told.
- ``typing.start`` repeated within ``typing_throttle`` seconds refreshes the
  expiry but is not re-broadcast. Without a refresh the indicator expires
  after ``typing_ttl`` seconds and ``typing`` ``on: false`` goes out.
- A connection may send ``typing_max_per_minute`` typing frames per minute;
  more are refused with ``rate_limited`` and change nothing.
- When the typing device disconnects its indicators are cleared at once.
- Several nodes (issue 13): the node of the typing device also sends the
  frame through ``remote`` (one publish on ``u:<member>`` per member another
  node holds; typing is throttled, so this stays small).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from actors.supervision import ServiceNursery
from protocol import codec
from protocol.errors import ErrorCode
from protocol.frames import Ok
from protocol.frames_presence import Typing, TypingEventData, TypingStart, TypingStop
from realtime_server.dispatch import Dispatcher, FrameContext
from realtime_server.hub import Hub
from realtime_server.presence import RoomMembers
from realtime_server.session import Session
from realtime_server.wsframes import binary_frame
from storage.errors import StoreError

RATE_WINDOW = 60.0

_Key = tuple[str, str]  # (room, user)


@dataclass(slots=True, eq=False)
class _Entry:
    room: str
    user: str
    conn_id: int
    members: frozenset[str]
    deadline: float
    last_broadcast: float
    scope: trio.CancelScope


class TypingTracker:
    def __init__(
        self, hub: Hub, members: RoomMembers, *, ttl: float, throttle: float, per_minute: int
    ) -> None:
        self._hub = hub
        self._members = members
        self._ttl = ttl
        self._throttle = throttle
        self._per_minute = per_minute
        self._entries: dict[_Key, _Entry] = {}
        self._by_conn: dict[int, set[_Key]] = {}
        self._recent: dict[int, deque[float]] = {}
        # One expiry task per indicator; run again after a crash (actors.supervision).
        self._tasks = ServiceNursery("typing")
        self.broadcasts = 0
        # (member, framed bytes) to members' sessions on other nodes; None on one node.
        self.remote: Callable[[str, bytes], None] | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._tasks.serve(task_status=task_status)

    def typing_in(self, room: str) -> set[str]:
        return {user for (r, user) in self._entries if r == room}

    def _over_rate(self, conn_id: int) -> bool:
        now = trio.current_time()
        recent = self._recent.setdefault(conn_id, deque(maxlen=self._per_minute))
        if len(recent) == self._per_minute and now - recent[0] < RATE_WINDOW:
            return True
        recent.append(now)
        return False

    async def start(self, session: Session, room: str) -> tuple[ErrorCode, str] | None:
        """Mark ``session``'s user typing in ``room``; the error to answer, or None."""
        conn_id = session.info.conn_id
        if self._over_rate(conn_id):
            return ErrorCode.RATE_LIMITED, "Too many typing frames; send one every few seconds."
        user = session.user_id
        members = await self._members.members(room)
        if user not in members:
            return ErrorCode.NOT_MEMBER, "You are not a member of this room (or it does not exist)."
        now = trio.current_time()
        key = (room, user)
        entry = self._entries.get(key)
        if entry is not None:
            entry.deadline = now + self._ttl
            entry.members = members
            if entry.conn_id != conn_id:
                self._by_conn.get(entry.conn_id, set()).discard(key)
                entry.conn_id = conn_id
                self._by_conn.setdefault(conn_id, set()).add(key)
            if now - entry.last_broadcast >= self._throttle:
                entry.last_broadcast = now
                self._broadcast(entry, on=True)
            return None
        if not self._tasks.running:
            return ErrorCode.UNAVAILABLE, "Typing is not available right now."
        entry = _Entry(room, user, conn_id, members, now + self._ttl, now, trio.CancelScope())
        self._entries[key] = entry
        self._by_conn.setdefault(conn_id, set()).add(key)
        self._broadcast(entry, on=True)
        self._tasks.start_soon(self._expire, entry)
        return None

    def stop(self, session: Session, room: str) -> tuple[ErrorCode, str] | None:
        if self._over_rate(session.info.conn_id):
            return ErrorCode.RATE_LIMITED, "Too many typing frames; send one every few seconds."
        entry = self._entries.get((room, session.user_id))
        if entry is not None:
            self._clear(entry)
        return None

    def session_closed(self, session: Session) -> None:
        conn_id = session.info.conn_id
        self._recent.pop(conn_id, None)
        for key in self._by_conn.pop(conn_id, set()):
            entry = self._entries.get(key)
            if entry is not None and entry.conn_id == conn_id:
                self._clear(entry)

    def members_changed(self, room: str) -> None:
        """Drop indicators of users no longer in ``room`` (after a group change)."""
        current = self._members.cached(room)
        for (r, user), entry in list(self._entries.items()):
            if r == room and (current is None or user not in current):
                self._clear(entry)

    async def _expire(self, entry: _Entry) -> None:
        if self._entries.get((entry.room, entry.user)) is not entry:
            return  # run again after a crash in _clear: it is cleared already
        with entry.scope:
            # A refresh moves the deadline; sleep again until it stops moving.
            while trio.current_time() < entry.deadline:  # noqa: ASYNC110
                await trio.sleep_until(entry.deadline)
            self._clear(entry)

    def _clear(self, entry: _Entry) -> None:
        key = (entry.room, entry.user)
        if self._entries.get(key) is not entry:
            return
        del self._entries[key]
        self._by_conn.get(entry.conn_id, set()).discard(key)
        entry.scope.cancel()
        self._broadcast(entry, on=False)

    def _broadcast(self, entry: _Entry, *, on: bool) -> None:
        data = binary_frame(
            codec.encode(Typing(d=TypingEventData(room=entry.room, user=entry.user, on=on)))
        )
        # On stop, members that left since the start must not hear it either.
        cached = self._members.cached(entry.room)
        members = entry.members if cached is None else cached
        remote = self.remote
        for user in members:
            if user == entry.user:
                continue
            for session in self._hub.sessions_of(user):
                session.push(data)
            if remote is not None:
                remote(user, data)
        self.broadcasts += 1


async def on_typing_start(ctx: FrameContext, frame: TypingStart) -> None:
    tracker: TypingTracker = ctx.services.typing
    try:
        problem = await tracker.start(ctx.session, frame.d.room)
    except StoreError:
        problem = ErrorCode.UNAVAILABLE, "Storage is unavailable; retry."
    _answer(ctx, frame.id, problem)


async def on_typing_stop(ctx: FrameContext, frame: TypingStop) -> None:
    tracker: TypingTracker = ctx.services.typing
    _answer(ctx, frame.id, tracker.stop(ctx.session, frame.d.room))


def _answer(ctx: FrameContext, request_id: int, problem: tuple[ErrorCode, str] | None) -> None:
    if problem is None:
        ctx.session.push_frame(Ok(re=request_id))
    else:
        ctx.session.push_error(problem[0], problem[1], request_id)


def register(dispatcher: Dispatcher) -> None:
    dispatcher.register(TypingStart, on_typing_start)
    dispatcher.register(TypingStop, on_typing_stop)
