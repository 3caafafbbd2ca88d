"""Socket handlers for the admin statistics subscription (issue 15, part 2).

Only admins may subscribe: the role is read from storage on every
``admin.stats.sub`` (it is granted and revoked by the operator's CLI, possibly
while the node runs), and re-checked by ``LiveStats`` on every tick.
"""

from __future__ import annotations

from protocol.errors import ErrorCode
from protocol.frames import Ok
from protocol.frames_notify import AdminStatsSub, AdminStatsUnsub
from realtime_server.admin_stats import LiveStats
from realtime_server.dispatch import Dispatcher, FrameContext
from storage.notifications import ADMIN, notification_store


async def on_sub(ctx: FrameContext, frame: AdminStatsSub) -> None:
    stats: LiveStats = ctx.services.stats
    if not await notification_store(ctx.services.store).has_role(ctx.user_id, ADMIN):
        ctx.session.push_error(
            ErrorCode.FORBIDDEN, "Only admins can follow the server's statistics.", frame.id
        )
        return
    ctx.session.push_frame(Ok(re=frame.id))
    stats.subscribe(ctx.session)


async def on_unsub(ctx: FrameContext, frame: AdminStatsUnsub) -> None:
    stats: LiveStats = ctx.services.stats
    stats.unsubscribe(ctx.session)
    ctx.session.push_frame(Ok(re=frame.id))


def register(dispatcher: Dispatcher) -> None:
    dispatcher.register(AdminStatsSub, on_sub)
    dispatcher.register(AdminStatsUnsub, on_unsub)
