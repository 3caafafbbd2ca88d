"""Handlers for the core and chat frames: ping, a repeated hello, sending,
editing, deleting, reacting, forwarding, receipts, pins and the
disappearing-messages timer.

Validation that needs no room state (text, kind, emoji shape, media
visibility) happens here, before the room's inbox; everything that does
(membership, ownership, existence, time windows) happens in the room actor.
"""

from __future__ import annotations

import uuid

import trio

from actors.errors import ActorError
from actors.room import ROOM, GetMessage, IsMember, Post, post_as
from actors.room_changes import Change
from actors.room_rules import content_problem, forwarded_copy, is_emoji, meta_of
from actors.room_rules import text_problem as text_content_problem
from bridge.chats.chatlist import clear_marked_unread
from protocol import frames
from protocol.errors import ErrorCode
from protocol.frames_chat import (
    MEDIA_KINDS,
    Delete,
    Disappear,
    Edit,
    Forward,
    Pin,
    React,
    ReceiptSet,
)
from protocol.media_kinds import media_kind_problem
from realtime_server.dispatch import Dispatcher, FrameContext


async def on_ping(ctx: FrameContext, frame: frames.Ping) -> None:
    now = ctx.services.clock  # the node's clock, as message times
    ctx.session.push_frame(frames.Pong(re=frame.id, ts=now()))


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


async def _media_problem(
    ctx: FrameContext, media_id: str, room: str, kind: str
) -> tuple[ErrorCode, str] | None:
    """Why ``media_id`` cannot be sent by this user to ``room`` as ``kind``, or None."""
    from storage.media import attach_media, media_visible_to

    store = ctx.services.store
    info = await media_visible_to(store, media_id, ctx.user_id)
    if info is None:
        return ErrorCode.NOT_FOUND, "No such upload, or you may not share it."
    if (mismatch := media_kind_problem(kind, info.content_type)) is not None:
        return ErrorCode.MEDIA_KIND_MISMATCH, mismatch  # issue 12: no PNG "voice note"
    try:
        member = await ctx.system.ref(ROOM, room).ask(IsMember(ctx.user_id))
    except ActorError as exc:
        if exc.code != ErrorCode.NOT_MEMBER:
            raise  # unavailable, timeout: the dispatcher answers with its code
        member = False
    if not member:
        return None  # the room answers not_member itself
    # Readable by the room's members from now on (before the message exists,
    # so no member ever sees a message whose file they may not fetch).
    await attach_media(store, media_id, room)
    return None


async def on_send(ctx: FrameContext, frame: frames.Send) -> None:
    d = frame.d
    if d.kind == "text" and d.media is None and d.loc is None and d.contact is None:
        # Plain text, nearly every message: the same checks as content_problem
        # and meta_of make of it, without their dicts and an empty meta struct.
        problem = text_content_problem(d.text, ctx.settings.max_message_chars, required=True)
        meta = None
    else:
        problem = content_problem(d, ctx.settings.max_message_chars)
        meta = meta_of(d, None)
    if problem is not None:
        ctx.session.push_error(problem[0], problem[1], frame.id)
        return
    if d.kind in MEDIA_KINDS and d.media is not None:
        why = await _media_problem(ctx, d.media, d.room, d.kind)
        if why is not None:
            ctx.session.push_error(why[0], why[1], frame.id)
            return
    post = Post(ctx.session, frame.id, ctx.user_id, d.cid, d.text, d.kind, meta, d.reply)
    room = ctx.system.ref(ROOM, d.room)
    try:
        # Queued without a task switch while the inbox has room: the read
        # loop goes on to the next frame already read (it yields at its next
        # socket read), instead of paying a checkpoint per message.
        room.tell_nowait(post)
    except trio.WouldBlock:
        # A full room inbox makes this connection wait: that is the backpressure
        # on a sender who outpaces storage, and it touches nobody else.
        await room.tell(post)


async def on_edit(ctx: FrameContext, frame: Edit) -> None:
    problem = text_problem(frame.d.text, ctx.settings.max_message_chars)
    if problem is not None:
        ctx.session.push_error(problem[0], problem[1], frame.id)
        return
    await ctx.system.ref(ROOM, frame.d.room).tell(
        Change(ctx.session, frame.id, ctx.user_id, frame.d)
    )


async def on_delete(ctx: FrameContext, frame: Delete) -> None:
    await ctx.system.ref(ROOM, frame.d.room).tell(
        Change(ctx.session, frame.id, ctx.user_id, frame.d)
    )


async def on_react(ctx: FrameContext, frame: React) -> None:
    if not is_emoji(frame.d.emoji):
        ctx.session.push_error(ErrorCode.INVALID, "A reaction must be a single emoji.", frame.id)
        return
    await ctx.system.ref(ROOM, frame.d.room).tell(
        Change(ctx.session, frame.id, ctx.user_id, frame.d)
    )


async def on_receipt(ctx: FrameContext, frame: ReceiptSet) -> None:
    if frame.d.read is None and frame.d.dlv is None:
        ctx.session.push_error(ErrorCode.INVALID, "Give 'read', 'dlv' or both.", frame.id)
        return
    if frame.d.read is not None:
        # Reading a chat clears its "marked unread" flag (issue 18).
        services = ctx.services
        await clear_marked_unread(
            services.store, services.push_to_user, ctx.user_id, frame.d.room, services.clock()
        )
    await ctx.system.ref(ROOM, frame.d.room).tell(
        Change(ctx.session, frame.id, ctx.user_id, frame.d)
    )


async def on_change(ctx: FrameContext, frame: Pin | Disappear) -> None:
    """Pins and the timer: every check needs the room's state (roles, pins)."""
    await ctx.system.ref(ROOM, frame.d.room).tell(
        Change(ctx.session, frame.id, ctx.user_id, frame.d)
    )


async def on_forward(ctx: FrameContext, frame: Forward) -> None:
    """Check the source and every target first: a forward is all or nothing."""
    d = frame.d
    session, rid, me = ctx.session, frame.id, ctx.user_id
    targets = list(dict.fromkeys(d.to))
    try:
        original = await ctx.system.ref(ROOM, d.room).ask(GetMessage(me, d.seq))
    except ActorError as exc:
        session.push_error(exc.code, exc.message, rid)
        return
    if original is None or original.deleted:
        session.push_error(ErrorCode.NOT_FOUND, "No such message in this room.", rid)
        return
    for room in targets:
        try:
            member = await ctx.system.ref(ROOM, room).ask(IsMember(me))
        except ActorError as exc:
            if exc.code != ErrorCode.NOT_MEMBER:
                session.push_error(exc.code, exc.message, rid)
                return
            member = False
        if not member:
            session.push_error(
                ErrorCode.NOT_MEMBER,
                f"You cannot write to room {room[:64]}; nothing was sent.",
                rid,
            )
            return
    content = forwarded_copy(original)
    if content.media is not None:
        from storage.media import attach_media

        for room in targets:
            await attach_media(ctx.services.store, content.media, room)
    copies: list[frames.Message] = []
    for room in targets:
        # One cid per target, derived from the request's: a resent forward
        # returns the same copies. uuid5 keeps it within the 64-char limit.
        cid = uuid.uuid5(uuid.NAMESPACE_URL, f"fwd:{d.cid}:{room}").hex
        try:
            copies.append(
                await post_as(
                    ctx.system,
                    room,
                    me,
                    cid,
                    content.text,
                    kind=content.kind,
                    meta=meta_of(content, None, fwd=True),
                )
            )
        except ActorError as exc:
            session.push_error(exc.code, exc.message, rid)
            return
    session.push_frame(frames.Ok(re=rid, ms=copies))


def register(dispatcher: Dispatcher) -> None:
    dispatcher.register(frames.Ping, on_ping)
    dispatcher.register(frames.Hello, on_hello)
    dispatcher.register(frames.Send, on_send)
    dispatcher.register(Edit, on_edit)
    dispatcher.register(Delete, on_delete)
    dispatcher.register(React, on_react)
    dispatcher.register(ReceiptSet, on_receipt)
    dispatcher.register(Forward, on_forward)
    dispatcher.register(Pin, on_change)
    dispatcher.register(Disappear, on_change)
