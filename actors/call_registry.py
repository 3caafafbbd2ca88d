"""Per-node call bookkeeping: who is busy with which call, and the call timers.

Rules:
- ``claim``/``release`` are synchronous: a ``CallActor`` checks and claims
  users with no ``await`` in between, so two calls racing for the same callee
  cannot both get them (trio runs one task at a time).
- Open calls are indexed by room (``open_call``, until ``release_call``) so
  a membership change can reach every call of the room (``calls_in``).
- Timers (ring time, reconnect grace) and session watchers are tasks in the
  registry's own nursery; each tells its call actor a message when it fires
  and is cancelled by ``cancel`` or ``cancel_all`` when no longer wanted.

Several nodes (issue 13): this registry stays one node's (the timers and
watchers of the calls it leads, and their rooms); who is busy is decided
across nodes in the shared ``call_claims`` table (``storage.call_claims``),
and the registry's ``holder`` then mirrors only the calls led here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

import trio

from actors.errors import ActorError, ActorUnavailable
from actors.runtime import ActorRef
from actors.sessions import Requester
from actors.supervision import Restart, RestartPolicy, ServiceNursery

TIMER_POLICY = RestartPolicy(
    restart=Restart.NEVER,
    reason="a timer measures from the transition that set it: run again it would fire"
    " late or twice; the call's other timers and its end still come",
)

if TYPE_CHECKING:  # actors.call imports this module
    from actors.call import CallMessage


class CallRegistry:
    def __init__(self) -> None:
        self._busy: dict[str, str] = {}  # user -> call id
        self._held: dict[str, set[str]] = {}  # call id -> users
        self._rooms: dict[str, set[str]] = {}  # room id -> its open calls
        self._room_of: dict[str, str] = {}  # open call id -> room id
        self._scopes: dict[str, set[trio.CancelScope]] = {}  # call id -> its timers
        self._tasks = ServiceNursery("call registry", TIMER_POLICY)
        # Several nodes: tells the other nodes that these users' access
        # changed (a block), for the calls they lead (set by the cluster link).
        self.elsewhere: Callable[[tuple[str, ...]], None] | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._tasks.serve(task_status=task_status)

    # ----- busy ----------------------------------------------------------------

    def holder(self, user: str) -> str | None:
        """The call ``user`` is busy with, if any."""
        return self._busy.get(user)

    def busy_elsewhere(self, users: Iterable[str], call_id: str) -> set[str]:
        return {u for u in users if self._busy.get(u, call_id) != call_id}

    def claim(self, user: str, call_id: str) -> bool:
        """Make ``user`` busy with ``call_id``; False if another call has them."""
        held = self._busy.setdefault(user, call_id)
        if held != call_id:
            return False
        self._held.setdefault(call_id, set()).add(user)
        return True

    def release(self, user: str, call_id: str) -> None:
        if self._busy.get(user) == call_id:
            del self._busy[user]
        users = self._held.get(call_id)
        if users is not None:
            users.discard(user)
            if not users:
                del self._held[call_id]

    def release_call(self, call_id: str) -> None:
        """The call is over (or was never stored): nobody is busy with it, its room forgets it."""
        for user in self._held.pop(call_id, set()):
            if self._busy.get(user) == call_id:
                del self._busy[user]
        room = self._room_of.pop(call_id, None)
        if room is not None:
            calls = self._rooms[room]
            calls.discard(call_id)
            if not calls:
                del self._rooms[room]

    # ----- rooms -----------------------------------------------------------------

    def open_call(self, call_id: str, room: str) -> None:
        """``call_id`` runs in ``room`` until ``release_call``."""
        self._room_of[call_id] = room
        self._rooms.setdefault(room, set()).add(call_id)

    def calls_in(self, room: str) -> list[str]:
        """The calls running in ``room`` on this node."""
        return sorted(self._rooms.get(room, ()))

    # ----- timers ----------------------------------------------------------------

    def after(
        self, call_id: str, seconds: float, ref: ActorRef[CallMessage], msg: CallMessage
    ) -> trio.CancelScope:
        """Tell ``msg`` to ``ref`` in ``seconds`` unless cancelled first."""
        # The deadline is fixed now, not when the task first runs: a timer
        # measures from the transition that set it.
        deadline = trio.current_time() + seconds

        async def wait() -> None:
            await trio.sleep_until(deadline)

        return self._spawn(call_id, wait, ref, msg)

    def when_closed(
        self, call_id: str, session: Requester, ref: ActorRef[CallMessage], msg: CallMessage
    ) -> trio.CancelScope:
        """Tell ``msg`` to ``ref`` once ``session`` has closed, unless cancelled first."""
        return self._spawn(call_id, session.closed.wait, ref, msg)

    def cancel_all(self, call_id: str) -> None:
        for scope in self._scopes.pop(call_id, set()):
            scope.cancel()

    def statistics(self) -> dict[str, int]:
        return {
            "busy_users": len(self._busy),
            "calls": len(self._held),
            "open_calls": len(self._room_of),
            "timers": sum(len(s) for s in self._scopes.values()),
        }

    def _spawn(
        self,
        call_id: str,
        wait: Callable[[], Awaitable[object]],
        ref: ActorRef[CallMessage],
        msg: CallMessage,
    ) -> trio.CancelScope:
        if not self._tasks.running:
            raise ActorUnavailable("the call registry is not running")
        scope = trio.CancelScope()
        scopes = self._scopes.setdefault(call_id, set())
        scopes.add(scope)

        async def run() -> None:
            try:
                with scope:
                    await wait()
                    try:
                        await ref.tell(msg)
                    except ActorError:
                        pass  # the node is stopping; nobody is left to tell
            finally:
                scopes.discard(scope)
                if not scopes and self._scopes.get(call_id) is scopes:
                    del self._scopes[call_id]

        self._tasks.start_soon(run, name=f"timer of {call_id}")
        return scope
