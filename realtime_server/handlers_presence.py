"""Socket handlers for presence: ``presence.get`` asks about users, and follows them.

The rules (who may see whom, grace, throttle) are ``PresenceTracker``'s, in
``realtime_server.presence``; this module only turns the frame into a call and
the answer into a frame.
"""

from __future__ import annotations

from protocol.errors import ErrorCode
from protocol.frames_presence import PresenceGet, PresenceList, PresenceListData
from realtime_server.dispatch import Dispatcher, FrameContext
from realtime_server.presence import PresenceTracker
from storage.errors import StoreError


async def on_presence_get(ctx: FrameContext, frame: PresenceGet) -> None:
    tracker: PresenceTracker = ctx.services.presence
    try:
        users = await tracker.lookup(ctx.user_id, frame.d.users)
    except StoreError:
        ctx.session.push_error(ErrorCode.UNAVAILABLE, None, frame.id)
        return
    if frame.d.sub:
        tracker.subscribe(ctx.session, [state.user for state in users])
    ctx.session.push_frame(PresenceList(re=frame.id, d=PresenceListData(users=users)))


def register(dispatcher: Dispatcher) -> None:
    dispatcher.register(PresenceGet, on_presence_get)
