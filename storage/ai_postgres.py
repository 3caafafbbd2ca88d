"""``PostgresAiStore``: AI tables on the main ``PostgresStore``'s pool.

Every call crosses the asyncio bridge through the store's ``_run`` (one pool
checkout, its error mapping); multi-statement work uses ``_in_transaction``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from .ai import ANSWER_COLUMNS as _ANSWER
from .ai import CONVERSATION_COLUMNS as _CONV
from .ai import (
    CONVERSATION_FIELDS,
    AiAnswer,
    AiConversation,
    AiFolder,
    AiPreset,
    AiUsageRow,
)
from .ai import PRESET_COLUMNS as _PRESET
from .postgres import PostgresStore


def _conv(row: Sequence[Any] | None) -> AiConversation | None:
    return None if row is None else AiConversation(*row)


class PostgresAiStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool = store._pool

    async def _execute(self, sql: str, *args: Any) -> str:
        status: str = await self._store._run(self._pool.execute, sql, *args)
        return status

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        rows: list[Any] = await self._store._run(self._pool.fetch, sql, *args)
        return rows

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._store._run(self._pool.fetchrow, sql, *args)

    # ----- conversations -------------------------------------------------------

    async def create_conversation(self, conv: AiConversation) -> None:
        await self._execute(
            f"INSERT INTO ai_conversations ({_CONV})"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
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
        )

    async def get_conversation(self, room_id: str) -> AiConversation | None:
        row = await self._fetchrow(
            f"SELECT {_CONV} FROM ai_conversations WHERE room_id = $1", room_id
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
        where, args = ["user_id = $1"], [user_id]
        if folder_id is not None:
            args.append(folder_id)
            where.append(f"folder_id = ${len(args)}")
        if favourite is not None:
            args.append(favourite)  # type: ignore[arg-type]
            where.append(f"favourite = ${len(args)}")
        n = len(args)
        rows = await self._fetch(
            f"SELECT {_CONV} FROM ai_conversations WHERE {' AND '.join(where)}"
            f" ORDER BY updated_at DESC, room_id LIMIT ${n + 1} OFFSET ${n + 2}",
            *args,
            limit,
            offset,
        )
        return [c for c in map(_conv, rows) if c is not None]

    async def update_conversation(
        self, room_id: str, changes: dict[str, Any]
    ) -> AiConversation | None:
        bad = changes.keys() - CONVERSATION_FIELDS
        if bad:
            raise ValueError(f"not conversation fields: {sorted(bad)}")
        if not changes:
            return await self.get_conversation(room_id)
        sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
        row = await self._fetchrow(
            f"UPDATE ai_conversations SET {sets} WHERE room_id = $1 RETURNING {_CONV}",
            room_id,
            *changes.values(),
        )
        return _conv(row)

    async def delete_conversation(self, room_id: str) -> bool:
        # Rooms cascade to members, messages and every ai_* row of the room.
        status = await self._execute("DELETE FROM rooms WHERE id = $1", room_id)
        return status != "DELETE 0"

    # ----- folders -------------------------------------------------------------

    async def create_folder(self, folder: AiFolder) -> None:
        await self._execute(
            "INSERT INTO ai_folders (id, user_id, name, created_at) VALUES ($1,$2,$3,$4)",
            folder.id,
            folder.user_id,
            folder.name,
            folder.created_at,
        )

    async def get_folder(self, folder_id: str) -> AiFolder | None:
        row = await self._fetchrow(
            "SELECT id, user_id, name, created_at FROM ai_folders WHERE id = $1", folder_id
        )
        return None if row is None else AiFolder(*row)

    async def list_folders(self, user_id: str) -> list[AiFolder]:
        rows = await self._fetch(
            "SELECT id, user_id, name, created_at FROM ai_folders WHERE user_id = $1"
            " ORDER BY created_at, id",
            user_id,
        )
        return [AiFolder(*r) for r in rows]

    async def rename_folder(self, folder_id: str, name: str) -> None:
        await self._execute("UPDATE ai_folders SET name = $2 WHERE id = $1", folder_id, name)

    async def delete_folder(self, folder_id: str) -> None:
        await self._execute("DELETE FROM ai_folders WHERE id = $1", folder_id)

    # ----- presets -------------------------------------------------------------

    async def create_preset(self, preset: AiPreset) -> None:
        await self._execute(
            f"INSERT INTO ai_presets ({_PRESET}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            preset.id,
            preset.user_id,
            preset.name,
            preset.model,
            preset.system_prompt,
            preset.temperature,
            preset.max_tokens,
            preset.created_at,
        )

    async def get_preset(self, preset_id: str) -> AiPreset | None:
        row = await self._fetchrow(f"SELECT {_PRESET} FROM ai_presets WHERE id = $1", preset_id)
        return None if row is None else AiPreset(*row)

    async def list_presets(self, user_id: str) -> list[AiPreset]:
        rows = await self._fetch(
            f"SELECT {_PRESET} FROM ai_presets WHERE user_id = $1 ORDER BY created_at, id",
            user_id,
        )
        return [AiPreset(*r) for r in rows]

    async def delete_preset(self, preset_id: str) -> None:
        await self._execute("DELETE FROM ai_presets WHERE id = $1", preset_id)

    # ----- answers and hidden ranges ----------------------------------------------

    async def add_answer(self, answer: AiAnswer) -> None:
        await self._execute(
            f"INSERT INTO ai_answers ({_ANSWER}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
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
        )

    async def answers(self, room_id: str) -> list[AiAnswer]:
        rows = await self._fetch(
            f"SELECT {_ANSWER} FROM ai_answers WHERE room_id = $1 ORDER BY seq", room_id
        )
        return [AiAnswer(*r) for r in rows]

    async def hide(self, room_id: str, from_seq: int, to_seq: int) -> None:
        await self._execute(
            "INSERT INTO ai_hidden (room_id, from_seq, to_seq) VALUES ($1,$2,$3)",
            room_id,
            from_seq,
            to_seq,
        )

    async def hidden(self, room_id: str) -> list[tuple[int, int]]:
        rows = await self._fetch(
            "SELECT from_seq, to_seq FROM ai_hidden WHERE room_id = $1 ORDER BY from_seq",
            room_id,
        )
        return [(int(a), int(b)) for a, b in rows]

    # ----- usage ---------------------------------------------------------------

    async def add_usage(
        self, user_id: str, periods: list[str], prompt_tokens: int, completion_tokens: int
    ) -> None:
        async def run(c: asyncpg.Connection) -> None:
            for period in periods:
                await c.execute(
                    "INSERT INTO ai_usage AS u (user_id, period, messages, prompt_tokens,"
                    " completion_tokens) VALUES ($1, $2, $3, $4, $5)"
                    " ON CONFLICT (user_id, period) DO UPDATE SET"
                    " messages = u.messages + excluded.messages,"
                    " prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,"
                    " completion_tokens = u.completion_tokens + excluded.completion_tokens",
                    user_id,
                    period,
                    1,
                    prompt_tokens,
                    completion_tokens,
                )

        await self._store._in_transaction(run)

    async def usage(self, user_id: str, periods: list[str]) -> dict[str, AiUsageRow]:
        rows = await self._fetch(
            "SELECT period, messages, prompt_tokens, completion_tokens FROM ai_usage"
            " WHERE user_id = $1 AND period = ANY($2::text[])",
            user_id,
            periods,
        )
        found = {r[0]: AiUsageRow(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows}
        return {p: found.get(p, AiUsageRow(p)) for p in periods}
