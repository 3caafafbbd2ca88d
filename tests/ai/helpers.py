"""Domain helpers for AI tests: start conversations, ask, and read a generation's frames."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from protocol import frames
from protocol.client import Client
from protocol.frames_ai import (
    AiAsk,
    AiAskData,
    AiDelta,
    AiDone,
    AiError,
    AiStart,
    AiStop,
    AiStopData,
)
from tests.e2e.helpers import Account, auth


async def new_conversation(http: httpx.AsyncClient, account: Account, **body: Any) -> str:
    r = await http.post("/ai/conversations", json=body, headers=auth(account))
    assert r.status_code == 201, r.text
    return str(r.json()["conversation"]["id"])


async def ask(
    client: Client, room: str, text: str, *, cid: str | None = None, model: str | None = None
) -> frames.Message:
    reply = await client.request(
        AiAsk(id=0, d=AiAskData(room=room, cid=cid or uuid.uuid4().hex, text=text, model=model))
    )
    assert isinstance(reply, frames.Ok) and reply.d is not None, reply
    return reply.d


async def stop(client: Client, gen: str) -> None:
    reply = await client.request(AiStop(id=0, d=AiStopData(gen=gen)))
    assert isinstance(reply, frames.Ok), reply


@dataclass
class Answer:
    """Everything one session saw of one generation."""

    start: AiStart | None = None
    deltas: list[AiDelta] = field(default_factory=list)
    end: AiDone | AiError | None = None
    messages: list[frames.Message] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(d.d.text for d in self.deltas)

    @property
    def indexes(self) -> list[int]:
        return [d.d.i for d in self.deltas]

    @property
    def gen(self) -> str:
        assert self.start is not None
        return self.start.d.gen


async def next_start(client: Client, timeout: float = 5.0) -> AiStart:  # noqa: ASYNC109
    while True:
        frame = await client.next_push(timeout=timeout)
        if isinstance(frame, AiStart):
            return frame


async def read_answer(
    client: Client,
    answer: Answer | None = None,
    *,
    until_deltas: int | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> Answer:
    """Read pushes into ``answer`` until its end frame (or ``until_deltas`` deltas)."""
    answer = answer or Answer()
    with trio.fail_after(timeout):
        while answer.end is None:
            if until_deltas is not None and len(answer.deltas) >= until_deltas:
                break
            frame = await client.next_push()
            match frame:
                case AiStart():
                    answer.start = frame
                case AiDelta():
                    answer.deltas.append(frame)
                case AiDone() | AiError():
                    answer.end = frame
                case frames.MsgNew():
                    answer.messages.append(frame.d)
                case _:
                    pass  # resume.done, presence and the like
    return answer
