"""Examples of the AI frames, spliced into ``protocol.schema.EXAMPLES``."""

from __future__ import annotations

import msgspec

from protocol.errors import ErrorCode
from protocol.frames import Message
from protocol.frames_ai import (
    AiAsk,
    AiAskData,
    AiAttach,
    AiAttachData,
    AiDelta,
    AiDeltaData,
    AiDone,
    AiDoneData,
    AiEdit,
    AiEditData,
    AiError,
    AiErrorData,
    AiFileRef,
    AiRegen,
    AiRegenData,
    AiStart,
    AiStartData,
    AiStop,
    AiStopData,
    AiUsage,
)

_TS = 1_700_000_000_000
_GEN = "g_018bcfe568000a1b2c3d4e5f6a7b8c9d0e1f"
_ANSWER = Message(
    id="m_9a0b",
    room="r_chat",
    seq=8,
    sender="ai:gpt-4o-mini",
    cid=_GEN,
    text="Trio is a structured-concurrency library for Python.",
    ts=_TS,
    kind="ai",
)

# In a conversation of a project with files: those whose text went into the context.
_FILES = [AiFileRef(id="af_01", name="trio-notes.md")]

AI_EXAMPLES: dict[str, msgspec.Struct] = {
    "ai.ask": AiAsk(id=10, d=AiAskData(room="r_chat", cid="q1", text="What is trio?")),
    "ai.stop": AiStop(id=11, d=AiStopData(gen=_GEN)),
    "ai.attach": AiAttach(id=12, d=AiAttachData(room="r_chat", from_=3, gen=_GEN)),
    "ai.regen": AiRegen(id=13, d=AiRegenData(room="r_chat")),
    "ai.edit": AiEdit(
        id=14, d=AiEditData(room="r_chat", seq=7, cid="q2", text="What is trio, briefly?")
    ),
    "ai.start": AiStart(
        d=AiStartData(
            gen=_GEN,
            room="r_chat",
            model="gpt-4o-mini",
            by="u_123",
            q=7,
            sender="ai:gpt-4o-mini",
            files=_FILES,
        )
    ),
    "ai.delta": AiDelta(d=AiDeltaData(gen=_GEN, room="r_chat", i=0, text="Trio is")),
    "ai.done": AiDone(
        d=AiDoneData(
            gen=_GEN,
            room="r_chat",
            status="done",
            n=9,
            usage=AiUsage(prompt=21, completion=11, total=32),
            msg=_ANSWER,
            files=_FILES,
        )
    ),
    "ai.error": AiError(
        d=AiErrorData(
            gen=_GEN,
            room="r_chat",
            code=ErrorCode.AI_PROVIDER_ERROR.value,
            text="Provider 'openai' answered HTTP 500.",
            n=0,
        )
    ),
}
