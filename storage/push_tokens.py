"""Push tokens of device sessions and the push privacy setting (issue 15, part 3).

Written once for both databases on the main store's ``Database``.

Rules:
- A token belongs to one device session (``session_id``: the refresh-token
  family). Registering a token that exists moves it to the caller's session:
  a device holds one token per app, whoever signed in on it last owns it.
- Signing a session out removes its tokens (``remove_sessions``, called by the
  token service in the same place that refuses the session's access tokens);
  a token the provider reports dead is removed by value (``remove_dead``).
- ``targets`` answers, in one read, what the push dispatcher needs for a room
  event: each offline member's tokens, whether that member muted the room at
  ``now`` (the rule of ``storage.chatlist.ChatSettings.muted``: muted while
  ``now < muted_until``), the member's preview setting and unread count (the
  badge: the sum over the member's rooms of messages after its read cursor).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from storage.sql.database import Database
from storage.sql.dialect import Dialect
from storage.sql.statements import Execute, Fetch, Op

from .base import Store

PROVIDERS = ("fcm", "apns")


@dataclass(frozen=True, slots=True)
class PushToken:
    token: str
    user_id: str
    session_id: str
    provider: str  # one of PROVIDERS
    app_id: str  # Android package name or iOS bundle id
    created_at: int


@dataclass(frozen=True, slots=True)
class PushTarget:
    """One device to push to, with what the push may say."""

    user_id: str
    token: str
    provider: str
    app_id: str
    show_preview: bool
    badge: int  # the user's unread message count


_TOKEN_COLUMNS = "token, user_id, session_id, provider, app_id, created_at"


def _targets(
    d: Dialect, user_ids: list[str], room_id: str | None, now: int
) -> Op[list[PushTarget]]:
    muted: set[str] = set()
    if room_id is not None:
        rows = yield Fetch(
            "SELECT user_id FROM chat_settings"
            f" WHERE room_id = ? AND {d.in_list('user_id')} AND muted_until > ?",
            (room_id, d.array(user_ids), now),
        )
        muted = {r[0] for r in rows}
    wanted = [u for u in user_ids if u not in muted]
    if not wanted:
        return []
    tokens = yield Fetch(
        "SELECT t.user_id, t.token, t.provider, t.app_id, COALESCE(s.show_preview, TRUE)"
        " FROM push_tokens t LEFT JOIN push_settings s ON s.user_id = t.user_id"
        f" WHERE {d.in_list('t.user_id')} ORDER BY t.user_id, t.token",
        (d.array(wanted),),
    )
    if not tokens:
        return []
    badges = yield Fetch(
        "SELECT m.user_id, COALESCE(SUM(CASE WHEN r.last_seq > m.read_seq"
        " THEN r.last_seq - m.read_seq ELSE 0 END), 0)"
        " FROM room_members m JOIN rooms r ON r.id = m.room_id"
        f" WHERE {d.in_list('m.user_id')} GROUP BY m.user_id",
        (d.array(sorted({t[0] for t in tokens})),),
    )
    badge = {r[0]: int(r[1]) for r in badges}
    return [
        PushTarget(u, token, provider, app_id, bool(preview), badge.get(u, 0))
        for u, token, provider, app_id, preview in tokens
    ]


def _register(t: PushToken) -> Op[None]:
    yield Execute(
        f"INSERT INTO push_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (token) DO UPDATE SET user_id = excluded.user_id,"
        " session_id = excluded.session_id, provider = excluded.provider,"
        " app_id = excluded.app_id, created_at = excluded.created_at",
        (t.token, t.user_id, t.session_id, t.provider, t.app_id, t.created_at),
    )


class PushTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ----- tokens -----------------------------------------------------------------

    async def register(self, token: PushToken) -> None:
        await self._db.write(_register(token))

    async def tokens_of(self, user_id: str) -> list[PushToken]:
        rows = await self._db.fetch(
            f"SELECT {_TOKEN_COLUMNS} FROM push_tokens WHERE user_id = ? ORDER BY created_at",
            (user_id,),
        )
        return [PushToken(*r) for r in rows]

    async def unregister(self, user_id: str, token: str) -> bool:
        """The user's own token only; True when it was there."""
        removed = await self._db.execute(
            "DELETE FROM push_tokens WHERE user_id = ? AND token = ?", (user_id, token)
        )
        return removed > 0

    async def remove_sessions(self, session_ids: Collection[str]) -> int:
        """Signed-out sessions lose their tokens; returns how many went."""
        if not session_ids:
            return 0
        d = self._db.dialect
        return await self._db.execute(
            f"DELETE FROM push_tokens WHERE {d.in_list('session_id')}",
            (d.array(session_ids),),
        )

    async def remove_dead(self, tokens: Collection[str]) -> int:
        """Tokens the provider reported unregistered; returns how many went."""
        if not tokens:
            return 0
        d = self._db.dialect
        return await self._db.execute(
            f"DELETE FROM push_tokens WHERE {d.in_list('token')}", (d.array(tokens),)
        )

    async def targets(
        self, user_ids: Sequence[str], *, room_id: str | None, now: int
    ) -> list[PushTarget]:
        """Devices of these users to push to about ``room_id`` (see the rules)."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return []
        return await self._db.read(_targets(self._db.dialect, ids, room_id, now))

    async def title(self, room_id: str, sender_id: str) -> str:
        """A push's title: who wrote, and in which group."""
        row = await self._db.fetchone(
            "SELECT u.display_name, r.kind, r.name FROM rooms r"
            " LEFT JOIN users u ON u.id = ? WHERE r.id = ?",
            (sender_id, room_id),
        )
        if row is None:
            return "New message"
        name, kind, room_name = row
        who = name or "Someone"
        return f"{who} in {room_name}" if kind == "group" and room_name else who

    # ----- settings ---------------------------------------------------------------

    async def show_preview(self, user_id: str) -> bool:
        found = await self._db.fetchval(
            "SELECT show_preview FROM push_settings WHERE user_id = ?", (user_id,)
        )
        return True if found is None else bool(found)

    async def set_show_preview(self, user_id: str, show: bool, at: int) -> None:
        await self._db.execute(
            "INSERT INTO push_settings (user_id, show_preview, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET show_preview = excluded.show_preview,"
            " updated_at = excluded.updated_at",
            (user_id, show, at),
        )


def push_token_store(store: Store) -> PushTokenStore:
    return PushTokenStore(store.db)
