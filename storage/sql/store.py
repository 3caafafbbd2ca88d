"""``SqlStore``: the ``Store`` of ``storage.base``, written once for both databases.

Users, refresh tokens, rooms and messages. Every method is either one
statement through ``Database`` or an operation (``storage.sql.statements``) run
in one transaction; the SQL is the dialect-neutral subset both databases
accept, with the differences asked of ``self.db.dialect``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from storage.base import (
    MigrationReport,
    RefreshToken,
    Room,
    RoomMember,
    RoomSummary,
    StoredMessage,
    User,
)
from storage.errors import NotFound
from storage.fence import fenced
from storage.sql import migrate
from storage.sql.database import Database
from storage.sql.dialect import Dialect
from storage.sql.schema import (
    MESSAGE_COLUMNS,
    ROOM_COLUMNS,
    TOKEN_COLUMNS,
    USER_COLUMNS,
    fold,
    message_row,
    prefixed,
    room_from_row,
    room_tips,
    summary_from_row,
)
from storage.sql.statements import Execute, ExecuteMany, Fetch, FetchOne, Op, Row

_LIST_ROOMS = f"""
SELECT {prefixed("r", ROOM_COLUMNS)},
       r.direct_key, r.last_seq,
       (SELECT COUNT(*) FROM messages u
         WHERE u.room_id = r.id AND u.seq > me.read_seq AND u.sender_id <> me.user_id
           AND u.deleted_at IS NULL),
       {prefixed("m", MESSAGE_COLUMNS)}
FROM room_members me
JOIN rooms r ON r.id = me.room_id
LEFT JOIN messages m ON m.room_id = r.id AND m.seq = r.last_seq
WHERE me.user_id = ?
ORDER BY COALESCE(r.last_message_at, r.created_at) DESC, r.id
LIMIT ? OFFSET ?
"""

_MESSAGE_MARKS = ", ".join("?" * len(MESSAGE_COLUMNS.split(",")))


def _user(row: Row | None) -> User | None:
    return None if row is None else User(*row)


def load_room(room_id: str) -> Op[Room | None]:
    """The room and its members; run it in a transaction for one snapshot."""
    row = yield FetchOne(f"SELECT {ROOM_COLUMNS}, direct_key FROM rooms WHERE id = ?", (room_id,))
    if row is None:
        return None
    members = yield Fetch(
        "SELECT user_id, role, read_seq FROM room_members WHERE room_id = ?"
        " ORDER BY joined_at, user_id",
        (room_id,),
    )
    return room_from_row(row, tuple(RoomMember(*m) for m in members))


def _create_room(room: Room) -> Op[Room]:
    # ON CONFLICT waits for a concurrent creator of the same pair and then
    # does nothing; the SELECT after it sees that room committed.
    inserted = yield FetchOne(
        f"INSERT INTO rooms ({ROOM_COLUMNS}, direct_key) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (direct_key) DO NOTHING RETURNING id",
        (room.id, room.kind, room.name, room.created_by, room.created_at, room.direct_key),
    )
    if inserted is None:
        # The pair already has its direct room: hand that one back.
        found = yield FetchOne("SELECT id FROM rooms WHERE direct_key = ?", (room.direct_key,))
        room_id = found[0]
    else:
        room_id = room.id
        yield ExecuteMany(
            "INSERT INTO room_members (room_id, user_id, role, read_seq, joined_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(room.id, m.user_id, m.role, m.read_seq, room.created_at) for m in room.members],
        )
    stored = yield from load_room(room_id)
    assert stored is not None  # read inside the transaction that wrote it
    return stored


def members_of(d: Dialect, room_ids: Sequence[str]) -> Op[dict[str, tuple[RoomMember, ...]]]:
    """The members of each room, in joining order: one statement for all rooms."""
    members: dict[str, list[RoomMember]] = {room_id: [] for room_id in room_ids}
    if members:
        found = yield Fetch(
            "SELECT room_id, user_id, role, read_seq FROM room_members"
            f" WHERE {d.in_list('room_id')} ORDER BY joined_at, user_id",
            (d.array(members),),
        )
        for room_id, *member in found:
            members[room_id].append(RoomMember(*member))
    return {room_id: tuple(listed) for room_id, listed in members.items()}


def _list_rooms(d: Dialect, user_id: str, limit: int, offset: int) -> Op[list[RoomSummary]]:
    rows = yield Fetch(_LIST_ROOMS, (user_id, limit, max(offset, 0)))
    members = yield from members_of(d, [r[0] for r in rows])
    return [summary_from_row(r, members[r[0]]) for r in rows]


def insert_messages_op(d: Dialect, messages: Sequence[StoredMessage]) -> Op[None]:
    """The hot path's one transaction: the rows, then each room's tip."""
    if d.name == "postgres":
        # One statement, one round trip: the rows go in as one array per
        # column and the same statement advances each room's tip from what it
        # just inserted. GREATEST ignores NULL, so a room's first message sets
        # last_message_at.
        yield Execute(
            _PG_INSERT_MESSAGES, d.table_params((message_row(m) for m in messages), _WIDTH)
        )
        return
    # SQLite has no round trip to save; executemany is its fastest bulk path.
    yield ExecuteMany(
        f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({_MESSAGE_MARKS})",
        [message_row(m) for m in messages],
    )
    # MAX keeps the tip monotonic even if batches for one room were ever
    # applied out of order; the write lock makes read-modify-write safe.
    yield ExecuteMany(
        "UPDATE rooms SET last_seq = MAX(last_seq, ?),"
        " last_message_at = MAX(COALESCE(last_message_at, 0), ?) WHERE id = ?",
        [(seq, at, room_id) for room_id, (seq, at) in room_tips(messages).items()],
    )


_WIDTH = len(MESSAGE_COLUMNS.split(","))
_PG_TYPES = "text text bigint text text text bigint text text bigint bigint bigint bigint".split()
_PG_INSERT_MESSAGES = f"""
WITH batch AS (
    INSERT INTO messages ({MESSAGE_COLUMNS})
    SELECT * FROM unnest({", ".join(f"?::{t}[]" for t in _PG_TYPES)})
    RETURNING room_id, seq, created_at
)
UPDATE rooms r
   SET last_seq = GREATEST(r.last_seq, b.seq),
       last_message_at = GREATEST(r.last_message_at, b.at)
  FROM (SELECT room_id, max(seq) AS seq, max(created_at) AS at
          FROM batch GROUP BY room_id) b
 WHERE r.id = b.room_id
"""


class SqlStore:
    def __init__(
        self,
        db: Database,
        *,
        messages_db: Database | None = None,
        lease_db: Database | None = None,
    ) -> None:
        self.db = db
        self.backend = db.backend
        # The group-commit writer's own connection where the driver has a
        # pool (PostgreSQL); SQLite's single write connection otherwise.
        self._messages_db = messages_db or db
        # Node lease renewals (issue 13) on a connection of their own: a
        # loaded node's pool queue must never make its lease run out.
        self.lease_db = lease_db or db

    async def migrate(self) -> MigrationReport:
        report = await migrate.migrate(self.db)
        await self.db.schema_changed()
        return report

    async def ping(self) -> None:
        await self.db.ping()

    async def aclose(self) -> None:
        await self.db.aclose()

    # users

    async def create_user(self, user: User) -> None:
        await self.db.execute(
            "INSERT INTO users (id, email, email_lc, username, username_lc,"
            " display_name, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user.id,
                user.email,
                fold(user.email) if user.email is not None else None,
                user.username,
                fold(user.username) if user.username is not None else None,
                user.display_name,
                user.password_hash,
                user.created_at,
            ),
        )

    async def get_user(self, user_id: str) -> User | None:
        return _user(
            await self.db.fetchone(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        )

    async def get_user_by_login(self, login: str) -> User | None:
        key = fold(login)
        # An email match wins should a username ever equal someone's email.
        row = await self.db.fetchone(
            f"SELECT {USER_COLUMNS} FROM users WHERE email_lc = ? OR username_lc = ?"
            " ORDER BY (email_lc = ?) DESC LIMIT 1",
            (key, key, key),
        )
        return _user(row)

    async def update_user(self, user_id: str, *, display_name: str) -> User | None:
        row = await self.db.fetchone(
            f"UPDATE users SET display_name = ? WHERE id = ? RETURNING {USER_COLUMNS}",
            (display_name, user_id),
            write=True,
        )
        return _user(row)

    async def existing_user_ids(self, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        d = self.db.dialect
        rows = await self.db.fetch(
            f"SELECT id FROM users WHERE {d.in_list('id')}", (d.array(set(user_ids)),)
        )
        return {r[0] for r in rows}

    # refresh tokens

    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self.db.execute(
            f"INSERT INTO refresh_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token.token_hash,
                token.user_id,
                token.family_id,
                token.device,
                token.created_at,
                token.expires_at,
                token.used_at,
                token.revoked_at,
            ),
        )

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self.db.fetchone(
            f"SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
        )
        return None if row is None else RefreshToken(*row)

    async def use_refresh_token(self, token_hash: str, at: int) -> bool:
        # One conditional UPDATE is the atomic test-and-set: of two racing
        # refreshes exactly one changes the row (PostgreSQL re-checks the WHERE
        # against the committed row after waiting on its lock).
        changed = await self.db.execute(
            "UPDATE refresh_tokens SET used_at = ?"
            " WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL",
            (at, token_hash),
        )
        return changed == 1

    async def revoke_token_family(self, family_id: str, at: int) -> None:
        await self.db.execute(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
            (at, family_id),
        )

    # rooms

    async def create_room(self, room: Room) -> Room:
        return await self.db.write(_create_room(room))

    async def get_room(self, room_id: str) -> Room | None:
        # One read transaction: room and members from the same snapshot.
        return await self.db.read(load_room(room_id))

    async def list_rooms(self, user_id: str, *, limit: int, offset: int) -> list[RoomSummary]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        return await self.db.read(_list_rooms(self.db.dialect, user_id, limit, offset))

    async def set_read_seq(self, room_id: str, user_id: str, seq: int) -> int:
        stored = await self.db.fetchval(
            f"UPDATE room_members SET read_seq = {self.db.dialect.greatest('read_seq', '?')}"
            " WHERE room_id = ? AND user_id = ? RETURNING read_seq",
            (seq, room_id, user_id),
            write=True,
        )
        if stored is None:
            raise NotFound(f"{user_id} is not a member of {room_id}")
        return int(stored)

    # messages

    async def insert_messages(
        self, messages: Sequence[StoredMessage], fences: Mapping[str, int] | None = None
    ) -> None:
        if messages:
            op = insert_messages_op(self.db.dialect, messages)
            if fences:
                op = fenced(self.db.dialect, fences, op)
            await self._messages_db.write(op)

    async def last_seq(self, room_id: str) -> int:
        seq = await self.db.fetchval("SELECT last_seq FROM rooms WHERE id = ?", (room_id,))
        return 0 if seq is None else int(seq)

    async def find_by_cids(
        self, room_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredMessage]:
        if not keys:
            return {}
        d = self.db.dialect
        rows = await self.db.fetch(
            f"SELECT {prefixed('m', MESSAGE_COLUMNS)} FROM messages m"
            f" JOIN (SELECT DISTINCT * FROM {d.table(('sender_id', 'cid'), ('text', 'text'))}) k"
            "   ON m.sender_id = k.sender_id AND m.cid = k.cid"
            " WHERE m.room_id = ?",
            (*d.table_params(keys, 2), room_id),
        )
        found = [StoredMessage(*r) for r in rows]
        return {(m.sender_id, m.cid): m for m in found}

    async def messages_after(self, room_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        if limit <= 0:
            return []
        rows = await self.db.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (room_id, after_seq, limit),
        )
        return [StoredMessage(*r) for r in rows]

    async def messages_before(
        self, room_id: str, before_seq: int, limit: int
    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        rows = await self.db.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            (room_id, before_seq, limit),
        )
        return [StoredMessage(*r) for r in reversed(rows)]
