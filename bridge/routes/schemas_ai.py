"""REST bodies and answers of the AI routes (``bridge.routes.ai``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from bridge.routes.schemas import NO_NUL
from protocol.frames_ai import AiFileRef
from storage.ai import AiConversation, AiFolder, AiPreset

# No NUL in any stored text: PostgreSQL cannot hold it (issue 12: it answered 503).
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=NO_NUL)]
Title = Annotated[str, msgspec.Meta(max_length=120, pattern=NO_NUL)]
Model = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=NO_NUL)]
SystemPrompt = Annotated[str, msgspec.Meta(max_length=8000, pattern=NO_NUL)]
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
MaxTokens = Annotated[int, msgspec.Meta(ge=1, le=200_000)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
Cid = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    pass


class CreateConversation(_Request, kw_only=True):
    """Settings not given come from ``preset_id`` if given, else the defaults."""

    title: Title = ""
    model: Model | None = None
    system_prompt: SystemPrompt | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    preset_id: Id | None = None
    folder_id: Id | None = None


class UpdateConversation(_Request, kw_only=True):
    """Only the fields present change; ``folder_id: null`` takes it out of its folder.

    ``preset_id`` applies a preset: its model, system prompt, temperature and
    max tokens replace the conversation's (fields given beside it win).
    """

    title: Title | msgspec.UnsetType = msgspec.UNSET
    model: Model | msgspec.UnsetType = msgspec.UNSET
    system_prompt: SystemPrompt | msgspec.UnsetType = msgspec.UNSET
    temperature: Temperature | None | msgspec.UnsetType = msgspec.UNSET
    max_tokens: MaxTokens | None | msgspec.UnsetType = msgspec.UNSET
    folder_id: Id | None | msgspec.UnsetType = msgspec.UNSET
    favourite: bool | msgspec.UnsetType = msgspec.UNSET
    preset_id: Id | msgspec.UnsetType = msgspec.UNSET


class ConversationOut(msgspec.Struct, kw_only=True):
    id: str  # the room id: the socket's ai.ask and msg.* frames use it
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
    running: str | None = None  # id of the generation running now, if any

    @classmethod
    def of(cls, c: AiConversation, running: str | None = None) -> ConversationOut:
        return cls(
            id=c.room_id,
            title=c.title,
            model=c.model,
            system_prompt=c.system_prompt,
            temperature=c.temperature,
            max_tokens=c.max_tokens,
            folder_id=c.folder_id,
            preset_id=c.preset_id,
            favourite=c.favourite,
            created_at=c.created_at,
            updated_at=c.updated_at,
            running=running,
        )


class ConversationEnvelope(msgspec.Struct):
    conversation: ConversationOut


class ConversationList(msgspec.Struct):
    conversations: list[ConversationOut]


class ConversationQuery(msgspec.Struct, frozen=True):
    folder: Id | None = None
    favourite: bool | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    offset: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0


class AiMessageOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    seq: int
    role: Literal["user", "assistant"]
    sender: str
    text: str
    ts: int
    model: str | None = None
    status: str | None = None  # answers: done | stopped | failed
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    files: list[AiFileRef] | None = None  # answers: project files in their context


class AiMessageList(msgspec.Struct):
    messages: list[AiMessageOut]


class ExportOut(msgspec.Struct):
    conversation: ConversationOut
    messages: list[AiMessageOut]
    exported_at: int


class FolderBody(_Request):
    name: Name


class FolderOut(msgspec.Struct):
    id: str
    name: str
    created_at: int

    @classmethod
    def of(cls, f: AiFolder) -> FolderOut:
        return cls(f.id, f.name, f.created_at)


class FolderEnvelope(msgspec.Struct):
    folder: FolderOut


class FolderList(msgspec.Struct):
    folders: list[FolderOut]


class PresetBody(_Request, kw_only=True):
    name: Name
    model: Model
    system_prompt: SystemPrompt = ""
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None


class PresetOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    model: str
    system_prompt: str
    temperature: float | None
    max_tokens: int | None
    created_at: int

    @classmethod
    def of(cls, p: AiPreset) -> PresetOut:
        return cls(
            id=p.id,
            name=p.name,
            model=p.model,
            system_prompt=p.system_prompt,
            temperature=p.temperature,
            max_tokens=p.max_tokens,
            created_at=p.created_at,
        )


class PresetEnvelope(msgspec.Struct):
    preset: PresetOut


class PresetList(msgspec.Struct):
    presets: list[PresetOut]


class ModelOut(msgspec.Struct):
    id: str
    provider: str
    offline: bool


class ModelList(msgspec.Struct):
    models: list[ModelOut]
    default: str


class UsagePeriodOut(msgspec.Struct):
    period: str
    messages: int
    prompt_tokens: int
    completion_tokens: int


class UsageOut(msgspec.Struct):
    """The quota (billing's plan: AI messages per period) and recorded token usage."""

    plan: str
    limit: int
    used: int
    resets_at: int
    day: UsagePeriodOut
    month: UsagePeriodOut


class StreamBody(_Request, kw_only=True):
    cid: Cid
    text: str
    model: Model | None = None


class ExportQuery(msgspec.Struct, frozen=True):
    format: Literal["json", "markdown"] = "json"
