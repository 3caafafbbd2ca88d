"""``SqliteAiStore``: AI tables on the main ``SqliteStore``'s two connections.

Every method is one thread call through the store's ``_write``/``_read``, so
the write serialisation and the no-transaction-across-await rule of
``storage.sqlite`` hold here too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

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
from .sqlite import SqliteStore, _transaction


def _conv(row: Sequence[Any] | None) -> AiConversation | None:
    if row is None:
        return None
    values = list(row)
    values[9] = bool(values[9])
    return AiConversation(*values)


class SqliteAiStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    # ----- conversations -------------------------------------------------------

    async def create_conversation(self, conv: AiConversation) -> None:
        values = (
            conv.room_id,
            conv.user_id,
            conv.title,
            conv.model,
            conv.system_prompt,
            conv.temperature,
            conv.max_tokens,
            conv.folder_id,
            conv.preset_id,
            int(conv.favourite),
            conv.created_at,
            conv.updated_at,
        )
        await self._store._write(
            lambda c: c.execute(
                f"INSERT INTO ai_conversations ({_CONV}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", values
            )
        )

    async def get_conversation(self, room_id: str) -> AiConversation | None:
        row = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_CONV} FROM ai_conversations WHERE room_id = ?", (room_id,)
            ).fetchone()
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
        where, args = ["user_id = ?"], [user_id]
        if folder_id is not None:
            where.append("folder_id = ?")
            args.append(folder_id)
        if favourite is not None:
            where.append("favourite = ?")
            args.append(int(favourite))  # type: ignore[arg-type]
        sql = (
            f"SELECT {_CONV} FROM ai_conversations WHERE {' AND '.join(where)}"
            " ORDER BY updated_at DESC, room_id LIMIT ? OFFSET ?"
        )
        rows = await self._store._read(lambda c: c.execute(sql, (*args, limit, offset)).fetchall())
        return [c for c in map(_conv, rows) if c is not None]

    async def update_conversation(
        self, room_id: str, changes: dict[str, Any]
    ) -> AiConversation | None:
        bad = changes.keys() - CONVERSATION_FIELDS
        if bad:
            raise ValueError(f"not conversation fields: {sorted(bad)}")
        values = {k: int(v) if k == "favourite" else v for k, v in changes.items()}

        def run(c: sqlite3.Connection) -> AiConversation | None:
            with _transaction(c):
                if values:
                    sets = ", ".join(f"{k} = ?" for k in values)
                    c.execute(
                        f"UPDATE ai_conversations SET {sets} WHERE room_id = ?",
                        (*values.values(), room_id),
                    )
                row = c.execute(
                    f"SELECT {_CONV} FROM ai_conversations WHERE room_id = ?", (room_id,)
                ).fetchone()
            return _conv(row)

        return await self._store._write(run)

    async def delete_conversation(self, room_id: str) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                # Rooms cascade to members, messages and every ai_* row of the room.
                return c.execute("DELETE FROM rooms WHERE id = ?", (room_id,)).rowcount > 0

        return await self._store._write(run)

    # ----- folders -------------------------------------------------------------

    async def create_folder(self, folder: AiFolder) -> None:
        await self._store._write(
            lambda c: c.execute(
                "INSERT INTO ai_folders (id, user_id, name, created_at) VALUES (?,?,?,?)",
                (folder.id, folder.user_id, folder.name, folder.created_at),
            )
        )

    async def get_folder(self, folder_id: str) -> AiFolder | None:
        row = await self._store._read(
            lambda c: c.execute(
                "SELECT id, user_id, name, created_at FROM ai_folders WHERE id = ?", (folder_id,)
            ).fetchone()
        )
        return None if row is None else AiFolder(*row)

    async def list_folders(self, user_id: str) -> list[AiFolder]:
        rows = await self._store._read(
            lambda c: c.execute(
                "SELECT id, user_id, name, created_at FROM ai_folders WHERE user_id = ?"
                " ORDER BY created_at, id",
                (user_id,),
            ).fetchall()
        )
        return [AiFolder(*r) for r in rows]

    async def rename_folder(self, folder_id: str, name: str) -> None:
        await self._store._write(
            lambda c: c.execute("UPDATE ai_folders SET name = ? WHERE id = ?", (name, folder_id))
        )

    async def delete_folder(self, folder_id: str) -> None:
        await self._store._write(
            lambda c: c.execute("DELETE FROM ai_folders WHERE id = ?", (folder_id,))
        )

    # ----- presets -------------------------------------------------------------

    async def create_preset(self, preset: AiPreset) -> None:
        values = (
            preset.id,
            preset.user_id,
            preset.name,
            preset.model,
            preset.system_prompt,
            preset.temperature,
            preset.max_tokens,
            preset.created_at,
        )
        await self._store._write(
            lambda c: c.execute(
                f"INSERT INTO ai_presets ({_PRESET}) VALUES (?,?,?,?,?,?,?,?)", values
            )
        )

    async def get_preset(self, preset_id: str) -> AiPreset | None:
        row = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_PRESET} FROM ai_presets WHERE id = ?", (preset_id,)
            ).fetchone()
        )
        return None if row is None else AiPreset(*row)

    async def list_presets(self, user_id: str) -> list[AiPreset]:
        rows = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_PRESET} FROM ai_presets WHERE user_id = ? ORDER BY created_at, id",
                (user_id,),
            ).fetchall()
        )
        return [AiPreset(*r) for r in rows]

    async def delete_preset(self, preset_id: str) -> None:
        await self._store._write(
            lambda c: c.execute("DELETE FROM ai_presets WHERE id = ?", (preset_id,))
        )

    # ----- answers and hidden ranges ----------------------------------------------

    async def add_answer(self, answer: AiAnswer) -> None:
        values = (
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
        await self._store._write(
            lambda c: c.execute(
                f"INSERT INTO ai_answers ({_ANSWER}) VALUES (?,?,?,?,?,?,?,?,?,?)", values
            )
        )

    async def answers(self, room_id: str) -> list[AiAnswer]:
        rows = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_ANSWER} FROM ai_answers WHERE room_id = ? ORDER BY seq", (room_id,)
            ).fetchall()
        )
        return [AiAnswer(*r) for r in rows]

    async def hide(self, room_id: str, from_seq: int, to_seq: int) -> None:
        await self._store._write(
            lambda c: c.execute(
                "INSERT INTO ai_hidden (room_id, from_seq, to_seq) VALUES (?,?,?)",
                (room_id, from_seq, to_seq),
            )
        )

    async def hidden(self, room_id: str) -> list[tuple[int, int]]:
        rows = await self._store._read(
            lambda c: c.execute(
                "SELECT from_seq, to_seq FROM ai_hidden WHERE room_id = ? ORDER BY from_seq",
                (room_id,),
            ).fetchall()
        )
        return [(int(a), int(b)) for a, b in rows]

    # ----- usage ---------------------------------------------------------------

    async def add_usage(
        self, user_id: str, periods: list[str], prompt_tokens: int, completion_tokens: int
    ) -> None:
        def run(c: sqlite3.Connection) -> None:
            with _transaction(c):
                for period in periods:
                    c.execute(
                        "INSERT INTO ai_usage (user_id, period, messages, prompt_tokens,"
                        " completion_tokens) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (user_id, period) DO UPDATE SET"
                        " messages = messages + excluded.messages,"
                        " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
                        " completion_tokens = completion_tokens + excluded.completion_tokens",
                        (
                            user_id,
                            period,
                            1,
                            prompt_tokens,
                            completion_tokens,
                        ),
                    )

        await self._store._write(run)

    async def usage(self, user_id: str, periods: list[str]) -> dict[str, AiUsageRow]:
        marks = ",".join("?" * len(periods))
        rows = await self._store._read(
            lambda c: c.execute(
                "SELECT period, messages, prompt_tokens, completion_tokens FROM ai_usage"
                f" WHERE user_id = ? AND period IN ({marks})",
                (user_id, *periods),
            ).fetchall()
        )
        found = {r[0]: AiUsageRow(*r) for r in rows}
        return {p: found.get(p, AiUsageRow(p)) for p in periods}
