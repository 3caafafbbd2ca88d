"""Notifications, admin announcements and admin statistics (issue 15, part 2).

- ``/me/notifications``: the caller's own notifications. An id that is not
  theirs (unknown, or another user's) answers 404 like an unknown one, and a
  mark-read request naming one marks nothing.
- ``/admin/...``: only users with the ``admin`` role, which the operator
  grants with ``realtime-server admin grant EMAIL``; anyone else gets 403.
  The role is read from storage on every request, so a revoke takes effect
  at once, also for tokens issued before it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from quart import Response

from bridge.accounts.tokens import AccessClaims
from bridge.billing.plans import ACTIVE_STATUSES, plans_from_settings
from bridge.errors import BadRequest, Forbidden, NotFound
from bridge.http.routing import Router, json_response
from bridge.notifications.notifier import Notifier, to_wire
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from protocol.frames_notify import AdminStatsData, Notification
from storage.notifications import ADMIN, FIRST_PAGE, PlanRule, ReadResult, notification_store

MAX_READ_IDS = 100
NotificationId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class NotificationsQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    before: Annotated[
        NotificationId | None,
        msgspec.Meta(description="The `next` of the previous page; absent: the newest."),
    ] = None
    unread: Annotated[bool, msgspec.Meta(description="true: unread notifications only.")] = False


class NotificationPage(msgspec.Struct):
    notifications: list[Notification]
    unread: Annotated[int, msgspec.Meta(description="Your unread count, all pages.")]
    next: Annotated[
        str | None, msgspec.Meta(description="`before` of the next page; null on the last.")
    ] = None


class ReadRequest(msgspec.Struct, forbid_unknown_fields=True):
    ids: Annotated[list[NotificationId], msgspec.Meta(min_length=1, max_length=MAX_READ_IDS)]


class ReadOut(msgspec.Struct):
    unread: Annotated[int, msgspec.Meta(description="Your unread count after the change.")]
    marked: Annotated[int, msgspec.Meta(description="Notifications that were unread before.")]


class AnnouncementRequest(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    text: Annotated[
        str, msgspec.Meta(min_length=1, description="At most ANNOUNCEMENT_MAX_CHARS characters.")
    ]
    plan: Annotated[
        str | None,
        msgspec.Meta(description="Only the users of this plan (free, basic, premium); null: all."),
    ] = None


class AnnouncementOut(msgspec.Struct):
    id: str
    plan: str | None
    recipients: Annotated[int, msgspec.Meta(description="Users it was stored for.")]
    online_sessions: Annotated[int, msgspec.Meta(description="Sessions it was pushed to now.")]


def add_routes(router: Router, services: BridgeServices) -> None:
    store = services.store
    notes = notification_store(store)
    notifier: Notifier = services.notifier or Notifier.stored_only(store, lambda: services.clock())
    plans = services.billing.plans if services.billing is not None else None
    plans = plans or plans_from_settings(services.settings)

    async def require_admin(claims: AccessClaims) -> None:
        if not await notes.has_role(claims.user_id, ADMIN):
            raise Forbidden("Only admins can do this.")

    def read_out(user_id: str, result: ReadResult, ids: list[str], *, all: bool) -> Response:
        if result.unknown:
            shown = ", ".join(result.unknown[:5])
            raise NotFound(f"You have no notification with these ids: {shown}. Nothing was marked.")
        notifier.push_read(user_id, ids, result.unread, all=all)
        return json_response(ReadOut(result.unread, result.marked))

    @router.route(
        "GET",
        "/me/notifications",
        summary="Your notifications, newest first, with your unread count",
        tag="notifications",
        query=NotificationsQuery,
        responses={200: NotificationPage},
        errors=(ErrorCode.INVALID,),
    )
    async def list_notifications(claims: AccessClaims, query: NotificationsQuery) -> Response:
        me = claims.user_id
        # One more than asked: whether a next page exists, without a count.
        rows = await notes.page(
            me, before=query.before or FIRST_PAGE, limit=query.limit + 1, unread_only=query.unread
        )
        page = rows[: query.limit]
        more = len(rows) > query.limit
        return json_response(
            NotificationPage(
                [to_wire(n) for n in page],
                await notes.unread_count(me),
                page[-1].id if more else None,
            )
        )

    @router.route(
        "POST",
        "/me/notifications/<notification_id>/read",
        summary="Mark one of your notifications read",
        description="Your devices get a `notify.read` push. Already read: nothing changes.",
        tag="notifications",
        responses={200: ReadOut},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def read_one(claims: AccessClaims, notification_id: str) -> Response:
        me = claims.user_id
        result = await notes.mark_read(me, [notification_id], services.clock())
        return read_out(me, result, [notification_id], all=False)

    @router.route(
        "POST",
        "/me/notifications/read",
        summary="Mark several of your notifications read, all or nothing",
        description="One id that is not yours answers 404 and marks none.",
        tag="notifications",
        body=ReadRequest,
        responses={200: ReadOut},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.INVALID),
    )
    async def read_some(claims: AccessClaims, body: ReadRequest) -> Response:
        me = claims.user_id
        ids = list(dict.fromkeys(body.ids))
        result = await notes.mark_read(me, ids, services.clock())
        return read_out(me, result, ids, all=False)

    @router.route(
        "POST",
        "/me/notifications/read-all",
        summary="Mark all your notifications read",
        tag="notifications",
        responses={200: ReadOut},
    )
    async def read_all(claims: AccessClaims) -> Response:
        result = await notes.mark_all_read(claims.user_id, services.clock())
        return read_out(claims.user_id, result, [], all=True)

    @router.route(
        "POST",
        "/admin/announcements",
        summary="Send an announcement to every user, or to one plan's users (admins)",
        description=(
            "Stored as an `announcement` notification for each recipient and pushed at "
            "once as `notify.new` to their online sessions. Users who sign up later "
            "do not get it."
        ),
        tag="admin",
        body=AnnouncementRequest,
        responses={201: AnnouncementOut},
        errors=(ErrorCode.FORBIDDEN, ErrorCode.INVALID),
    )
    async def announce(claims: AccessClaims, body: AnnouncementRequest) -> Response:
        await require_admin(claims)
        limit = services.settings.announcement_max_chars
        if len(body.text) > limit:
            raise BadRequest(
                f"The text has {len(body.text)} characters; at most {limit} are allowed.",
                field="text",
            )
        if not body.text.strip() or not body.title.strip():
            raise BadRequest("The title and the text must not be blank.", field="text")
        names = [p.name for p in plans]
        if body.plan is not None and body.plan not in names:
            raise BadRequest(
                f"Unknown plan {body.plan!r}; choose one of: {', '.join(names)}.", field="plan"
            )
        rule = PlanRule(
            now=services.clock(),
            active_statuses=ACTIVE_STATUSES,
            grace_ms=services.settings.billing_renewal_grace_seconds * 1000,
            paid_plans=[p.name for p in plans if not p.is_free],
        )
        nid, recipients, online = await notifier.announce(body.title, body.text, body.plan, rule)
        return json_response(AnnouncementOut(nid, body.plan, recipients, online), status=201)

    @router.route(
        "GET",
        "/admin/stats",
        summary="The node's live statistics (admins)",
        description="The same figures as the socket's `admin.stats` push.",
        tag="admin",
        responses={200: AdminStatsData},
        errors=(ErrorCode.FORBIDDEN,),
    )
    async def stats(claims: AccessClaims) -> Response:
        await require_admin(claims)
        if services.stats is None:
            raise NotFound("This server runs without a live node: no statistics.")
        data: AdminStatsData = services.stats.snapshot()
        return json_response(data)
