"""Socket handlers for the call frames: size checks here, everything else in ``CallActor``.

Each handler casts one message to the call's actor and returns; the actor
answers on the session (``call.ok``, ``ok`` or ``err``). Casting keeps one
connection's signaling in the order it was sent: this connection's reader
hands frames over one at a time into the call's single inbox.
"""

from __future__ import annotations

from actors.call import CALL, Accept, CallRequests, Decline, Hangup, Join, Relay, Start
from actors.call_rules import signal_problem
from actors.errors import ActorError
from protocol.errors import ErrorCode
from protocol.frames_calls import (
    CallAccept,
    CallDecline,
    CallHangup,
    CallIce,
    CallJoin,
    CallSdp,
    CallStart,
)
from realtime_server.dispatch import Dispatcher, FrameContext
from storage.base import new_time_id


async def _tell(ctx: FrameContext, call_id: str, msg: CallRequests) -> None:
    try:
        await ctx.system.ref(CALL, call_id).tell(msg)
    except ActorError as exc:  # the actor system is stopping
        ctx.session.push_error(exc.code, exc.message, msg.request_id)


async def on_start(ctx: FrameContext, frame: CallStart) -> None:
    # Time-ordered ids: history pages by id, newest first.
    msg = Start(ctx.session, frame.id, room=frame.d.room, kind=frame.d.kind)
    await _tell(ctx, new_time_id("c_"), msg)


async def on_accept(ctx: FrameContext, frame: CallAccept) -> None:
    await _tell(ctx, frame.d.call, Accept(ctx.session, frame.id))


async def on_decline(ctx: FrameContext, frame: CallDecline) -> None:
    await _tell(ctx, frame.d.call, Decline(ctx.session, frame.id))


async def on_join(ctx: FrameContext, frame: CallJoin) -> None:
    await _tell(ctx, frame.d.call, Join(ctx.session, frame.id))


async def on_hangup(ctx: FrameContext, frame: CallHangup) -> None:
    await _tell(ctx, frame.d.call, Hangup(ctx.session, frame.id))


async def on_sdp(ctx: FrameContext, frame: CallSdp) -> None:
    d = frame.d
    if not d.sdp.strip():
        ctx.session.push_error(ErrorCode.INVALID, "The SDP is empty.", frame.id)
        return
    problem = signal_problem([d.sdp], ctx.settings.call_max_sdp_bytes, "SDP")
    if problem is not None:
        ctx.session.push_error(problem.code, problem.message, frame.id)
        return
    await _tell(ctx, d.call, Relay(ctx.session, frame.id, payload=d))


async def on_ice(ctx: FrameContext, frame: CallIce) -> None:
    d = frame.d
    fields = [d.candidate, d.sdp_mid or "", d.ufrag or ""]
    problem = signal_problem(fields, ctx.settings.call_max_ice_bytes, "ICE candidate")
    if problem is not None:
        ctx.session.push_error(problem.code, problem.message, frame.id)
        return
    await _tell(ctx, d.call, Relay(ctx.session, frame.id, payload=d))


def register(dispatcher: Dispatcher) -> None:
    dispatcher.register(CallStart, on_start)
    dispatcher.register(CallAccept, on_accept)
    dispatcher.register(CallDecline, on_decline)
    dispatcher.register(CallJoin, on_join)
    dispatcher.register(CallHangup, on_hangup)
    dispatcher.register(CallSdp, on_sdp)
    dispatcher.register(CallIce, on_ice)
