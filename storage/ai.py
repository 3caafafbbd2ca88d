"""Storage of AI conversations: the ``AiStore`` protocol, its records, and its picker.

An AI conversation is a room of kind ``"ai"`` whose only member is its owner;
its messages (prompts and answers) are ordinary room messages. What only AI
needs lives in tables of migration 0007: the conversation's settings, folders,
presets, one row per stored answer (status and tokens), the seq ranges hidden
from the visible history (regenerate, edit and resend), and usage counters per
user per month (``YYYY-MM``) and per day (``YYYY-MM-DD``). The quota itself
is billing's (``bridge.billing_quota``); these rows are the usage record.

``ai_store(store)`` returns the implementation for the store's backend; it
reuses the store's own connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
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


class AiStore(Protocol):
    # conversations (the room itself is created with Store.create_room first)
    async def create_conversation(self, conv: AiConversation) -> None: ...
    async def get_conversation(self, room_id: str) -> AiConversation | None: ...
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

    async def update_conversation(
        self, room_id: str, changes: dict[str, Any]
    ) -> AiConversation | None:
        """Set the given columns (names from CONVERSATION_FIELDS)."""

    async def delete_conversation(self, room_id: str) -> bool:
        """Delete the room, its messages and every AI row of it."""

    # folders
    async def create_folder(self, folder: AiFolder) -> None: ...
    async def get_folder(self, folder_id: str) -> AiFolder | None: ...
    async def list_folders(self, user_id: str) -> list[AiFolder]: ...
    async def rename_folder(self, folder_id: str, name: str) -> None: ...
    async def delete_folder(self, folder_id: str) -> None:
        """Its conversations stay, outside any folder."""

    # presets ("projects")
    async def create_preset(self, preset: AiPreset) -> None: ...
    async def get_preset(self, preset_id: str) -> AiPreset | None: ...
    async def list_presets(self, user_id: str) -> list[AiPreset]: ...
    async def delete_preset(self, preset_id: str) -> None: ...

    # answers and visible history
    async def add_answer(self, answer: AiAnswer) -> None: ...
    async def answers(self, room_id: str) -> list[AiAnswer]: ...
    async def hide(self, room_id: str, from_seq: int, to_seq: int) -> None: ...
    async def hidden(self, room_id: str) -> list[tuple[int, int]]: ...

    # usage and quota
    async def add_usage(
        self, user_id: str, periods: list[str], prompt_tokens: int, completion_tokens: int
    ) -> None:
        """Count one AI message and its tokens in each period."""

    async def usage(self, user_id: str, periods: list[str]) -> dict[str, AiUsageRow]: ...


def is_hidden(seq: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= seq <= hi for lo, hi in ranges)


def ai_store(store: Store) -> AiStore:
    """The ``AiStore`` twin for ``store``'s backend, sharing its connections."""
    if store.backend == "sqlite":
        from .ai_sqlite import SqliteAiStore

        return SqliteAiStore(store)  # type: ignore[arg-type]
    if store.backend == "postgres":
        from .ai_postgres import PostgresAiStore

        return PostgresAiStore(store)  # type: ignore[arg-type]
    raise ValueError(f"no AiStore for backend {store.backend!r}")


# Column lists shared by the SQLite and PostgreSQL implementations (same order as
# the record dataclasses, so a row maps with Record(*row)).
CONVERSATION_COLUMNS = (
    "room_id, user_id, title, model, system_prompt, temperature, max_tokens,"
    " folder_id, preset_id, favourite, created_at, updated_at"
)
PRESET_COLUMNS = "id, user_id, name, model, system_prompt, temperature, max_tokens, created_at"
ANSWER_COLUMNS = (
    "message_id, room_id, seq, gen_id, user_id, model, status,"
    " prompt_tokens, completion_tokens, created_at"
)
