"""The sessions connected to this node, by user: who gets a fan-out here."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from protocol.errors import CloseCode
from realtime_server.session import Session

_EMPTY: dict[int, Session] = {}


class Hub:
    """Plain synchronous registry: trio runs one task at a time, and no method awaits."""

    def __init__(self) -> None:
        self._by_user: dict[str, dict[int, Session]] = {}
        self._count = 0
        # Told when a user's first session here arrives and when their last one
        # leaves (issue 13: a node listens on the bus for its users and rooms).
        self._arrived: list[Callable[[str], None]] = []
        self._left: list[Callable[[str], None]] = []

    def on_user(self, arrived: Callable[[str], None], left: Callable[[str], None]) -> None:
        self._arrived.append(arrived)
        self._left.append(left)

    def add(self, session: Session) -> None:
        sessions = self._by_user.get(session.user_id)
        first = sessions is None
        if sessions is None:
            sessions = self._by_user[session.user_id] = {}
        sessions[session.info.conn_id] = session
        self._count += 1
        if first:
            for arrived in self._arrived:
                arrived(session.user_id)

    def remove(self, session: Session) -> None:
        sessions = self._by_user.get(session.user_id)
        if sessions is not None and sessions.pop(session.info.conn_id, None) is not None:
            self._count -= 1
            if not sessions:
                del self._by_user[session.user_id]
                for left in self._left:
                    left(session.user_id)

    def sessions_of(self, user_id: str) -> Iterable[Session]:
        return self._by_user.get(user_id, _EMPTY).values()

    def count_sessions(self, user_ids: Iterable[str]) -> int:
        """How many sessions these users have here (metrics count fan-out per batch)."""
        by_user = self._by_user
        return sum(len(by_user.get(u, _EMPTY)) for u in user_ids)

    def all_sessions(self) -> Iterable[Session]:
        """Every session here (admin announcements); a snapshot, safe to push while iterating."""
        return [s for sessions in self._by_user.values() for s in sessions.values()]

    def online_users(self) -> int:
        return len(self._by_user)

    def is_online(self, user_id: str) -> bool:
        return user_id in self._by_user

    def close_sessions(self, user_id: str, session_ids: Iterable[str], code: CloseCode) -> int:
        """Close the user's connections that belong to these device sessions
        (refresh-token families); returns how many. Used by remote sign-out."""
        wanted = set(session_ids)
        closing = [s for s in self.sessions_of(user_id) if s.info.session_id in wanted]
        for session in closing:
            session.close(code)
        return len(closing)

    def __len__(self) -> int:
        return self._count
