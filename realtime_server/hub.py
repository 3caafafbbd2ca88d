"""The sessions connected to this node, by user: who gets a fan-out here."""

from __future__ import annotations

from collections.abc import Iterable

from realtime_server.session import Session

_EMPTY: dict[int, Session] = {}


class Hub:
    """Plain synchronous registry: trio runs one task at a time, and no method awaits."""

    def __init__(self) -> None:
        self._by_user: dict[str, dict[int, Session]] = {}
        self._count = 0

    def add(self, session: Session) -> None:
        self._by_user.setdefault(session.user_id, {})[session.info.conn_id] = session
        self._count += 1

    def remove(self, session: Session) -> None:
        sessions = self._by_user.get(session.user_id)
        if sessions is not None and sessions.pop(session.info.conn_id, None) is not None:
            self._count -= 1
            if not sessions:
                del self._by_user[session.user_id]

    def sessions_of(self, user_id: str) -> Iterable[Session]:
        return self._by_user.get(user_id, _EMPTY).values()

    def is_online(self, user_id: str) -> bool:
        return user_id in self._by_user

    def __len__(self) -> int:
        return self._count
