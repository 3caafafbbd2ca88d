"""Domain helpers for the rich-messaging tests: typed requests and push filters."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from protocol import frames
from protocol.client import Client
from protocol.frames_chat import (
    Delete,
    DeleteData,
    Edit,
    EditData,
    Forward,
    ForwardData,
    MsgPinned,
    React,
    ReactData,
    ReceiptData,
    ReceiptSet,
    RoomDisappearing,
)

F = TypeVar("F")


async def next_of(client: Client, kind: type[F], wait: float = 5) -> F:
    """The next push of type ``kind``, skipping other features' pushes and ``resume.done``.

    Another chat push arriving first fails the test: it would be out of order.
    """
    while True:
        frame = await client.next_push(timeout=wait)
        if isinstance(frame, kind):
            return frame
        if isinstance(frame, (frames.MsgNew, frames.ResumeGap, *_CHANGE_PUSHES)):
            raise AssertionError(f"expected {kind.__name__}, got {frame!r}")


async def chat_pushes_until_done(client: Client, wait: float = 5) -> tuple[list[Any], Any]:
    """Every chat push before ``resume.done`` (other features' pushes skipped), and its data."""
    seen: list[Any] = []
    chat = (frames.MsgNew, frames.ResumeGap, *_CHANGE_PUSHES)
    while True:
        frame = await client.next_push(timeout=wait)
        if isinstance(frame, frames.ResumeDone):
            return seen, frame.d
        if isinstance(frame, chat):
            seen.append(frame)


_CHANGE_PUSHES = (
    frames.MsgEdited,
    frames.MsgDeleted,
    frames.MsgReaction,
    frames.ReceiptUpdate,
    MsgPinned,
    RoomDisappearing,
)


async def send(client: Client, room: str, text: str = "", **fields: Any) -> frames.Message:
    reply = await client.request(
        frames.Send(id=0, d=frames.SendData(room=room, cid=uuid.uuid4().hex, text=text, **fields))
    )
    assert isinstance(reply, frames.Ok) and reply.d is not None, reply
    return reply.d


async def edit(client: Client, room: str, seq: int, text: str) -> frames.Ok:
    return await _ok(client, Edit(id=0, d=EditData(room=room, seq=seq, text=text)))


async def delete(client: Client, room: str, seq: int, *, everyone: bool) -> frames.Ok:
    return await _ok(client, Delete(id=0, d=DeleteData(room=room, seq=seq, all=everyone)))


async def react(client: Client, room: str, seq: int, emoji: str, off: bool = False) -> frames.Ok:
    return await _ok(client, React(id=0, d=ReactData(room=room, seq=seq, emoji=emoji, off=off)))


async def receipt(
    client: Client, room: str, read: int | None = None, dlv: int | None = None
) -> frames.Ok:
    return await _ok(client, ReceiptSet(id=0, d=ReceiptData(room=room, read=read, dlv=dlv)))


async def forward(client: Client, room: str, seq: int, to: list[str], cid: str) -> frames.Ok:
    return await _ok(client, Forward(id=0, d=ForwardData(room=room, seq=seq, to=to, cid=cid)))


async def _ok(client: Client, frame: Any) -> frames.Ok:
    reply = await client.request(frame)
    assert isinstance(reply, frames.Ok), reply
    return reply
