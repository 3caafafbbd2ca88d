"""Handlers for the core frames: ping, a repeated hello, and sending a message."""

from __future__ import annotations

from actors.room import ROOM, Post
from protocol import frames
from protocol.errors import ErrorCode
from realtime_server.dispatch import Dispatcher, FrameContext
from storage.base import now_ms


async def on_ping(ctx: FrameContext, frame: frames.Ping) -> None:
    ctx.session.push_frame(frames.Pong(re=frame.id, ts=now_ms()))


async def on_hello(ctx: FrameContext, frame: frames.Hello) -> None:
    ctx.session.push_error(ErrorCode.INVALID, "hello was already received.", frame.id)


def text_problem(text: str, max_chars: int) -> tuple[ErrorCode, str] | None:
    """Why a message text cannot be stored, or None when it can."""
    if not text.strip():
        return ErrorCode.INVALID, "Message text must not be empty."
    if "\x00" in text:
        # PostgreSQL cannot store NUL in text; refuse it on every backend alike.
        return ErrorCode.INVALID, "Message text must not contain NUL."
    if len(text) > max_chars:
        return (
            ErrorCode.MESSAGE_TOO_LONG,
            f"Message text is {len(text)} characters; the limit is {max_chars}.",
        )
    return None


async def on_send(ctx: FrameContext, frame: frames.Send) -> None:
    d = frame.d
    problem = text_problem(d.text, ctx.settings.max_message_chars)
    if problem is not None:
        ctx.session.push_error(problem[0], problem[1], frame.id)
        return
    # A full room inbox makes this connection wait: that is the backpressure
    # on a sender who outpaces storage, and it touches nobody else.
    await ctx.system.ref(ROOM, d.room).tell(Post(ctx.session, frame.id, ctx.user_id, d.cid, d.text))


def register(dispatcher: Dispatcher) -> None:
    dispatcher.register(frames.Ping, on_ping)
    dispatcher.register(frames.Hello, on_hello)
    dispatcher.register(frames.Send, on_send)
