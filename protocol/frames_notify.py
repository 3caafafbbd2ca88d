"""Notification and admin frames (issue 15, part 2).

Notifications are stored per user and read over REST (``GET /me/notifications``,
``POST /me/notifications/{id}/read``, ``POST /me/notifications/read-all``);
the socket carries them live::

    notify.new         server: a new notification for you (also an admin announcement)
    notify.read        server: some or all of your notifications were marked read
                       (on any of your devices), with your unread count after it

Admins (a role granted by the operator's CLI) may follow the node's live
statistics::

    admin.stats.sub    client: push ``admin.stats`` every ADMIN_STATS_INTERVAL
                       seconds from now on (one now); answered ``ok``, or ``err``
                       ``forbidden`` for a non-admin
    admin.stats.unsub  client: stop; answered ``ok``
    admin.stats        server: the node's figures

A subscription ends with its connection, or when the role is revoked. None
of these are replayed on resume: a device that was offline lists its
notifications over REST.

Pure types, no I/O: imported by ``protocol.frames`` into its unions.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from protocol.frames_base import Frame, RequestId

NotificationKind = Literal[
    "call.missed",
    "group.added",
    "story.reply",
    "payment.succeeded",
    "payment.failed",
    "plan.ending",
    "announcement",
]
NOTIFICATION_KINDS: tuple[str, ...] = get_args(NotificationKind)


class NotificationRef(msgspec.Struct, omit_defaults=True):
    """What a notification is about; which fields are set depends on its kind."""

    room: str | None = None  # call.missed, group.added, story.reply
    call: str | None = None  # call.missed
    user: Annotated[
        str | None,
        msgspec.Meta(description="Who caused it: the caller, who added you, who replied."),
    ] = None
    call_kind: str | None = None  # call.missed: audio | video
    plan: str | None = None  # payment.*, plan.ending, an announcement to one plan
    amount: Annotated[
        int | None, msgspec.Meta(description="payment.*: in the currency's minor unit.")
    ] = None
    currency: str | None = None
    ends_at: Annotated[
        int | None, msgspec.Meta(description="plan.ending: when the plan ends, ms since epoch.")
    ] = None
    reason: str | None = None  # payment.failed


# Every field always present (no omit_defaults): REST lists show ``read: false``.
class Notification(msgspec.Struct):
    """One notification. ``title`` and ``body`` are ready to show (English);
    clients that translate use ``kind`` and ``ref``. An announcement's id is the
    same for every recipient."""

    id: str
    kind: NotificationKind
    ts: int  # when it was made, ms since the epoch
    title: str
    body: str = ""
    ref: NotificationRef = msgspec.field(default_factory=NotificationRef)
    read: bool = False


class NotifyReadData(msgspec.Struct, omit_defaults=True):
    """``ids`` were marked read, or every notification when ``all``."""

    unread: int  # your unread count after the change
    ids: list[str] = []
    all: bool = False


class AdminStatsData(msgspec.Struct):
    """The deployment's live figures: with several nodes, the sum over every
    node heard from recently (``nodes``); ``interval`` is this node's window."""

    ts: int  # when they were taken, ms since the epoch
    connections: int  # open WebSocket connections
    sessions: int  # connections past hello
    online_users: int  # distinct users with at least one session
    rooms_live: Annotated[
        int, msgspec.Meta(description="Room actors alive (touched in the last ACTOR_IDLE_SECONDS).")
    ]
    rooms_with_traffic: Annotated[
        int, msgspec.Meta(description="Rooms that fanned out messages in the last interval.")
    ]
    messages_per_second: Annotated[
        float, msgspec.Meta(description="Messages stored and fanned out, over the last interval.")
    ]
    ai_generations: int  # AI answers being generated now
    calls: int  # calls ringing or running now
    interval: float  # seconds the rates were taken over (the last window's real length)
    nodes: Annotated[
        int, msgspec.Meta(description="Nodes counted: this one and those heard from recently.")
    ] = 1


# ----- client -> server ----------------------------------------------------


class AdminStatsSub(Frame, tag="admin.stats.sub"):
    """Follow the node's statistics (admins only); answered ``ok``, then ``admin.stats`` pushes."""

    id: RequestId


class AdminStatsUnsub(Frame, tag="admin.stats.unsub"):
    """Stop the ``admin.stats`` pushes; answered ``ok``."""

    id: RequestId


# ----- server -> client ----------------------------------------------------


class NotifyNew(Frame, tag="notify.new"):
    """A new notification for you (stored: ``GET /me/notifications`` lists it)."""

    d: Notification


class NotifyRead(Frame, tag="notify.read"):
    """Your notifications were marked read (on any of your devices)."""

    d: NotifyReadData


class AdminStats(Frame, tag="admin.stats"):
    """The node's statistics, every ADMIN_STATS_INTERVAL seconds while subscribed."""

    d: AdminStatsData


NOTIFY_CLIENT_FRAMES = (AdminStatsSub, AdminStatsUnsub)
NOTIFY_SERVER_FRAMES = (NotifyNew, NotifyRead, AdminStats)
