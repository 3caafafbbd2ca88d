"""Documented examples of the notification and admin frames (``protocol.frames_notify``).

Merged into ``protocol.schema.EXAMPLES``.
"""

from __future__ import annotations

import msgspec

from protocol.frames_notify import (
    AdminStats,
    AdminStatsData,
    AdminStatsSub,
    AdminStatsUnsub,
    Notification,
    NotificationRef,
    NotifyNew,
    NotifyRead,
    NotifyReadData,
)

_TS = 1_700_000_000_000

NOTIFY_EXAMPLES: dict[str, msgspec.Struct] = {
    "admin.stats.sub": AdminStatsSub(id=21),
    "admin.stats.unsub": AdminStatsUnsub(id=22),
    "notify.new": NotifyNew(
        d=Notification(
            id="n_018bcfe56800000000074a1b2c3d4e5f",
            kind="call.missed",
            ts=_TS,
            title="Missed video call",
            body="ada called you.",
            ref=NotificationRef(room="r_general", call="c_9f8e", user="u_123", call_kind="video"),
        )
    ),
    "notify.read": NotifyRead(
        d=NotifyReadData(unread=2, ids=["n_018bcfe56800000000074a1b2c3d4e5f"])
    ),
    "admin.stats": AdminStats(
        d=AdminStatsData(
            ts=_TS,
            connections=1204,
            sessions=1198,
            online_users=950,
            rooms_live=310,
            rooms_with_traffic=42,
            messages_per_second=87.5,
            ai_generations=3,
            calls=7,
            interval=5.0,
        )
    ),
}
