"""Socket handlers of the AI frames: ask, stop, attach, regenerate, edit.

Each answers its request with ``ok`` or ``err`` and never waits on the
generation itself: the answer streams as ``ai.*`` pushes. The work is in
``actors.ai_service.AiService`` (``services.ai``), shared with REST.
"""

from __future__ import annotations

from actors.ai_service import AiService
from actors.errors import ActorError
from protocol import frames
from protocol.frames_ai import AiAsk, AiAttach, AiEdit, AiRegen, AiStop
from realtime_server.dispatch import Dispatcher, FrameContext


def _service(ctx: FrameContext) -> AiService:
    service: AiService = ctx.services.ai
    return service


async def on_ask(ctx: FrameContext, frame: AiAsk) -> None:
    d = frame.d
    try:
        message, _ = await _service(ctx).ask(ctx.user_id, d.room, d.cid, d.text, d.model)
    except ActorError as exc:
        ctx.session.push_error(exc.code, exc.message, frame.id)
        return
    ctx.session.push_frame(frames.Ok(re=frame.id, d=message))


async def on_stop(ctx: FrameContext, frame: AiStop) -> None:
    try:
        await _service(ctx).stop(ctx.user_id, frame.d.gen)
    except ActorError as exc:
        ctx.session.push_error(exc.code, exc.message, frame.id)
        return
    ctx.session.push_frame(frames.Ok(re=frame.id))


async def on_attach(ctx: FrameContext, frame: AiAttach) -> None:
    d = frame.d
    try:
        await _service(ctx).attach(ctx.user_id, ctx.session, d.room, d.gen, d.from_)
    except ActorError as exc:
        ctx.session.push_error(exc.code, exc.message, frame.id)
        return
    ctx.session.push_frame(frames.Ok(re=frame.id))


async def on_regen(ctx: FrameContext, frame: AiRegen) -> None:
    try:
        await _service(ctx).regenerate(ctx.user_id, frame.d.room, frame.d.model)
    except ActorError as exc:
        ctx.session.push_error(exc.code, exc.message, frame.id)
        return
    ctx.session.push_frame(frames.Ok(re=frame.id))


async def on_edit(ctx: FrameContext, frame: AiEdit) -> None:
    d = frame.d
    try:
        message, _ = await _service(ctx).edit(ctx.user_id, d.room, d.seq, d.cid, d.text, d.model)
    except ActorError as exc:
        ctx.session.push_error(exc.code, exc.message, frame.id)
        return
    ctx.session.push_frame(frames.Ok(re=frame.id, d=message))


def register(dispatcher: Dispatcher) -> None:
    dispatcher.register(AiAsk, on_ask)
    dispatcher.register(AiStop, on_stop)
    dispatcher.register(AiAttach, on_attach)
    dispatcher.register(AiRegen, on_regen)
    dispatcher.register(AiEdit, on_edit)
