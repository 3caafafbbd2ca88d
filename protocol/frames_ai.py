"""AI frames: ask a model in a room, and the generation's stream back.

A generation is one model answer in one room. Its frames go to every online
member session of the room (and to any session that attaches later)::

    ai.start   once, before any delta; ``files``: the project files in its context
    ai.delta   the answer so far grows by ``text``; ``i`` counts 0, 1, 2, ...
    ai.done    the end: ``status`` done | stopped; ``msg`` is the stored answer
    ai.error   the end after a failure; ``msg`` is the stored partial answer, if any

Exactly one of ``ai.done`` / ``ai.error`` ends a generation. Clients dedupe
deltas by (``gen``, ``i``); a device that comes online mid-answer sends
``ai.attach`` with the index it has (0 if none) and receives the missed deltas
first, then the live ones, with no gap and no duplicate.

Pure types, no I/O: imported by ``protocol.frames`` into its unions.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from protocol.frames_base import ClientId, Frame, RequestId, RoomId, Seq
from protocol.frames_chat import Message

GenId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ModelId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


# ----- payloads ------------------------------------------------------------


class AiAskData(msgspec.Struct, omit_defaults=True):
    """Post ``text`` as your message in ``room`` and have the AI answer it.

    ``model`` overrides the conversation's model for this answer only.
    """

    room: RoomId
    cid: ClientId
    text: str
    model: ModelId | None = None


class AiStopData(msgspec.Struct, omit_defaults=True):
    gen: GenId


class AiAttachData(msgspec.Struct, omit_defaults=True):
    """Receive the running generation of ``room`` from delta index ``from_``."""

    room: RoomId
    from_: Annotated[int, msgspec.Meta(ge=0, le=2**53)] = msgspec.field(default=0, name="from")
    gen: GenId | None = None


class AiRegenData(msgspec.Struct, omit_defaults=True):
    """Answer the last prompt of ``room`` again; the previous answer is hidden."""

    room: RoomId
    model: ModelId | None = None


class AiEditData(msgspec.Struct, omit_defaults=True):
    """Replace your message ``seq`` (and everything after it) by ``text``, then answer."""

    room: RoomId
    seq: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    cid: ClientId
    text: str
    model: ModelId | None = None


class AiUsage(msgspec.Struct, omit_defaults=True):
    """Tokens the provider counted (estimated for the offline model)."""

    prompt: int = 0
    completion: int = 0
    total: int = 0


class AiFileRef(msgspec.Struct, omit_defaults=True):
    """A file of the conversation's project whose text went into the answer's context."""

    id: str
    name: str


class AiStartData(msgspec.Struct, omit_defaults=True):
    gen: str
    room: str
    model: str
    by: str  # the user who asked
    q: Seq  # seq of the prompt message being answered
    sender: str  # the sender id the stored answer will carry ("ai:<model>")
    files: list[AiFileRef] | None = None  # project files in the context, most relevant first


class AiDeltaData(msgspec.Struct, omit_defaults=True):
    gen: str
    room: str
    i: int
    text: str


class AiDoneData(msgspec.Struct, omit_defaults=True):
    gen: str
    room: str
    status: Literal["done", "stopped"]
    n: int  # number of deltas sent
    usage: AiUsage
    msg: Message | None = None  # absent when a stop came before any text
    files: list[AiFileRef] | None = None  # as in ai.start: the files the answer could cite


class AiErrorData(msgspec.Struct, omit_defaults=True):
    gen: str
    room: str
    code: str  # an ErrorCode
    text: str  # human message
    n: int
    msg: Message | None = None  # the partial answer, stored when some text had arrived


# ----- client -> server ----------------------------------------------------


class AiAsk(Frame, tag="ai.ask"):
    """Answered by ``ok`` with your stored message, then ``ai.start`` goes to the room."""

    id: RequestId
    d: AiAskData


class AiStop(Frame, tag="ai.stop"):
    """Stop a generation; ``ok`` also when it has already ended (idempotent)."""

    id: RequestId
    d: AiStopData


class AiAttach(Frame, tag="ai.attach"):
    """Missed ``ai.delta`` frames come first, then ``ok``; later deltas follow live."""

    id: RequestId
    d: AiAttachData


class AiRegen(Frame, tag="ai.regen"):
    """Answered by ``ok``, then ``ai.start``."""

    id: RequestId
    d: AiRegenData


class AiEdit(Frame, tag="ai.edit"):
    """Answered by ``ok`` with the new stored message, then ``ai.start``."""

    id: RequestId
    d: AiEditData


# ----- server -> client ----------------------------------------------------


class AiStart(Frame, tag="ai.start"):
    """A generation began in one of your rooms."""

    d: AiStartData


class AiDelta(Frame, tag="ai.delta"):
    """The next piece of an answer; ``i`` runs 0, 1, 2, ... per generation."""

    d: AiDeltaData


class AiDone(Frame, tag="ai.done"):
    """A generation ended normally or was stopped; its answer is now in the history."""

    d: AiDoneData


class AiError(Frame, tag="ai.error"):
    """A generation failed (provider error, timeout, malformed stream)."""

    d: AiErrorData


AI_CLIENT_FRAMES = (AiAsk, AiStop, AiAttach, AiRegen, AiEdit)
AI_CLIENT_TYPES = frozenset({"ai.ask", "ai.stop", "ai.attach", "ai.regen", "ai.edit"})
AI_SERVER_FRAMES = (AiStart, AiDelta, AiDone, AiError)
