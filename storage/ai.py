"""Storage of AI conversations: the ``AiStore``, its records, and its factory.

An AI conversation is a room of kind ``"ai"`` whose only member is its owner;
its messages (prompts and answers) are ordinary room messages. What only AI
needs lives in tables of migration 0007: the conversation's settings, folders,
presets, one row per stored answer (status and tokens), the seq ranges hidden
from the visible history (regenerate, edit and resend), and usage counters per
user per month (``YYYY-MM``) and per day (``YYYY-MM-DD``). The quota itself
is billing's (``bridge.billing.quota``); these rows are the usage record.

``ai_store(store)`` works on the store's own ``Database``, whichever backend.
``favourite`` is INTEGER on SQLite and boolean on PostgreSQL: it goes in as a
Python bool and is read back with ``bool()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage.sql.dialect import register_unique
from storage.sql.statements import Row

if TYPE_CHECKING:
    from storage.sql.database import Database

    from .base import Store

CONVERSATION_FIELDS = frozenset(
    {
        "title",
        "model",
        "system_prompt",
        "temperature",
        "max_tokens",
        "folder_id",
        "preset_id",
        "favourite",
        "updated_at",
    }
)


@dataclass(frozen=True, slots=True)
class AiConversation:
    room_id: str
    user_id: str
    title: str
    model: str
    system_prompt: str
    temperature: float | None
    max_tokens: int | None
    folder_id: str | None
    preset_id: str | None
    favourite: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class AiFolder:
    id: str
    user_id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class AiPreset:
    id: str
    user_id: str
    name: str
    model: str
    system_prompt: str
    temperature: float | None
    max_tokens: int | None
    created_at: int


@dataclass(frozen=True, slots=True)
class AiAnswer:
    message_id: str
    room_id: str
    seq: int
    gen_id: str
    user_id: str
    model: str
    status: str  # "done" | "stopped" | "failed"
    prompt_tokens: int
    completion_tokens: int
    created_at: int


@dataclass(frozen=True, slots=True)
class AiUsageRow:
    period: str
    messages: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


register_unique(
    sqlite={
        "ai_conversations.room_id": "room_id",
        "ai_folders.id": "id",
        "ai_presets.id": "id",
        "ai_answers.message_id": "message_id",
    },
    postgres={
        "ai_conversations_pkey": "room_id",
        "ai_folders_pkey": "id",
        "ai_presets_pkey": "id",
        "ai_answers_pkey": "message_id",
    },
)

# Column lists in the order of the record dataclasses, so a row maps with
# Record(*row).
CONVERSATION_COLUMNS = (
    "room_id, user_id, title, model, system_prompt, temperature, max_tokens,"
    " folder_id, preset_id, favourite, created_at, updated_at"
)
FOLDER_COLUMNS = "id, user_id, name, created_at"
PRESET_COLUMNS = "id, user_id, name, model, system_prompt, temperature, max_tokens, created_at"
ANSWER_COLUMNS = (
    "message_id, room_id, seq, gen_id, user_id, model, status,"
    " prompt_tokens, completion_tokens, created_at"
)

_ADD_USAGE = (
    "INSERT INTO ai_usage AS u (user_id, period, messages, prompt_tokens, completion_tokens)"
    " VALUES (?, ?, 1, ?, ?)"
    " ON CONFLICT (user_id, period) DO UPDATE SET"
    " messages = u.messages + excluded.messages,"
    " prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,"
    " completion_tokens = u.completion_tokens + excluded.completion_tokens"
)


def _conv(row: Row | None) -> AiConversation | None:
    if row is None:
        return None
    values = list(row)
    values[9] = bool(values[9])
    return AiConversation(*values)


def is_hidden(seq: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= seq <= hi for lo, hi in ranges)


class AiStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # conversations (the room itself is created with Store.create_room first)

    async def create_conversation(self, conv: AiConversation) -> None:
        await self._db.execute(
            f"INSERT INTO ai_conversations ({CONVERSATION_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conv.room_id,
                conv.user_id,
                conv.title,
                conv.model,
                conv.system_prompt,
                conv.temperature,
                conv.max_tokens,
                conv.folder_id,
                conv.preset_id,
                conv.favourite,
                conv.created_at,
                conv.updated_at,
            ),
        )

    async def get_conversation(self, room_id: str) -> AiConversation | None:
        row = await self._db.fetchone(
            f"SELECT {CONVERSATION_COLUMNS} FROM ai_conversations WHERE room_id = ?", (room_id,)
        )
        return _conv(row)

    async def list_conversations(
        self,
        user_id: str,
        *,
        folder_id: str | None,
        favourite: bool | None,
        limit: int,
        offset: int,
    ) -> list[AiConversation]:
        """Most recently updated first."""
        where: list[str] = ["user_id = ?"]
        params: list[object] = [user_id]
        if folder_id is not None:
            where.append("folder_id = ?")
            params.append(folder_id)
        if favourite is not None:
            where.append("favourite = ?")
            params.append(favourite)
        rows = await self._db.fetch(
            f"SELECT {CONVERSATION_COLUMNS} FROM ai_conversations WHERE {' AND '.join(where)}"
            " ORDER BY updated_at DESC, room_id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [c for c in map(_conv, rows) if c is not None]

    async def update_conversation(
        self, room_id: str, changes: dict[str, Any]
    ) -> AiConversation | None:
        """Set the given columns (names from CONVERSATION_FIELDS)."""
        bad = changes.keys() - CONVERSATION_FIELDS
        if bad:
            raise ValueError(f"not conversation fields: {sorted(bad)}")
        if not changes:
            return await self.get_conversation(room_id)
        # The names are checked above, so they may go into the SQL text.
        sets = ", ".join(f"{k} = ?" for k in changes)
        row = await self._db.fetchone(
            f"UPDATE ai_conversations SET {sets} WHERE room_id = ?"
            f" RETURNING {CONVERSATION_COLUMNS}",
            (*changes.values(), room_id),
            write=True,
        )
        return _conv(row)

    async def delete_conversation(self, room_id: str) -> bool:
        """Delete the room, its messages and every AI row of it."""
        # Rooms cascade to members, messages and every ai_* row of the room.
        return await self._db.execute("DELETE FROM rooms WHERE id = ?", (room_id,)) > 0

    # folders

    async def create_folder(self, folder: AiFolder) -> None:
        await self._db.execute(
            f"INSERT INTO ai_folders ({FOLDER_COLUMNS}) VALUES (?, ?, ?, ?)",
            (folder.id, folder.user_id, folder.name, folder.created_at),
        )

    async def get_folder(self, folder_id: str) -> AiFolder | None:
        row = await self._db.fetchone(
            f"SELECT {FOLDER_COLUMNS} FROM ai_folders WHERE id = ?", (folder_id,)
        )
        return None if row is None else AiFolder(*row)

    async def list_folders(self, user_id: str) -> list[AiFolder]:
        rows = await self._db.fetch(
            f"SELECT {FOLDER_COLUMNS} FROM ai_folders WHERE user_id = ? ORDER BY created_at, id",
            (user_id,),
        )
        return [AiFolder(*r) for r in rows]

    async def rename_folder(self, folder_id: str, name: str) -> None:
        await self._db.execute("UPDATE ai_folders SET name = ? WHERE id = ?", (name, folder_id))

    async def delete_folder(self, folder_id: str) -> None:
        """Its conversations stay, outside any folder."""
        # ai_conversations.folder_id is ON DELETE SET NULL.
        await self._db.execute("DELETE FROM ai_folders WHERE id = ?", (folder_id,))

    # presets ("projects")

    async def create_preset(self, preset: AiPreset) -> None:
        await self._db.execute(
            f"INSERT INTO ai_presets ({PRESET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                preset.id,
                preset.user_id,
                preset.name,
                preset.model,
                preset.system_prompt,
                preset.temperature,
                preset.max_tokens,
                preset.created_at,
            ),
        )

    async def get_preset(self, preset_id: str) -> AiPreset | None:
        row = await self._db.fetchone(
            f"SELECT {PRESET_COLUMNS} FROM ai_presets WHERE id = ?", (preset_id,)
        )
        return None if row is None else AiPreset(*row)

    async def list_presets(self, user_id: str) -> list[AiPreset]:
        rows = await self._db.fetch(
            f"SELECT {PRESET_COLUMNS} FROM ai_presets WHERE user_id = ? ORDER BY created_at, id",
            (user_id,),
        )
        return [AiPreset(*r) for r in rows]

    async def delete_preset(self, preset_id: str) -> None:
        await self._db.execute("DELETE FROM ai_presets WHERE id = ?", (preset_id,))

    # answers and visible history

    async def add_answer(self, answer: AiAnswer) -> None:
        await self._db.execute(
            f"INSERT INTO ai_answers ({ANSWER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                answer.message_id,
                answer.room_id,
                answer.seq,
                answer.gen_id,
                answer.user_id,
                answer.model,
                answer.status,
                answer.prompt_tokens,
                answer.completion_tokens,
                answer.created_at,
            ),
        )

    async def answers(self, room_id: str) -> list[AiAnswer]:
        rows = await self._db.fetch(
            f"SELECT {ANSWER_COLUMNS} FROM ai_answers WHERE room_id = ? ORDER BY seq", (room_id,)
        )
        return [AiAnswer(*r) for r in rows]

    async def hide(self, room_id: str, from_seq: int, to_seq: int) -> None:
        await self._db.execute(
            "INSERT INTO ai_hidden (room_id, from_seq, to_seq) VALUES (?, ?, ?)",
            (room_id, from_seq, to_seq),
        )

    async def hidden(self, room_id: str) -> list[tuple[int, int]]:
        rows = await self._db.fetch(
            "SELECT from_seq, to_seq FROM ai_hidden WHERE room_id = ? ORDER BY from_seq",
            (room_id,),
        )
        return [(int(a), int(b)) for a, b in rows]

    # usage

    async def add_usage(
        self, user_id: str, periods: list[str], prompt_tokens: int, completion_tokens: int
    ) -> None:
        """Count one AI message and its tokens in each period (all in one transaction)."""
        # The upsert adds to the row as it is when its lock is taken, so
        # concurrent calls never lose a count.
        await self._db.executemany(
            _ADD_USAGE, [(user_id, p, prompt_tokens, completion_tokens) for p in periods]
        )

    async def usage(self, user_id: str, periods: list[str]) -> dict[str, AiUsageRow]:
        if not periods:
            return {}
        d = self._db.dialect
        rows = await self._db.fetch(
            "SELECT period, messages, prompt_tokens, completion_tokens FROM ai_usage"
            f" WHERE user_id = ? AND {d.in_list('period')}",
            (user_id, d.array(periods)),
        )
        found = {r[0]: AiUsageRow(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows}
        return {p: found.get(p, AiUsageRow(p)) for p in periods}


def ai_store(store: Store) -> AiStore:
    """The ``AiStore`` on ``store``'s database, sharing its connections."""
    return AiStore(store.db)
