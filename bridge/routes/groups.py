"""Groups: add, remove, promote, demote, leave, rename, description and avatar.

Creating a group (with members) is ``POST /rooms``. Roles rank
owner > admin > member. Rules (pure, in ``problem_with``):
- only admins and the owner manage; a plain member gets 403 ``forbidden``;
- you act only on someone ranked below you: admins remove and promote
  members, only the owner removes or demotes admins;
- the owner can be neither removed nor demoted, and cannot leave (there is no
  one to hand the group to);
- a non-member of the group, or a room that does not exist, answers 404
  ``not_found`` like every room route; a direct room answers 400 ``invalid``.

After every change: the room actor reloads its members (a removed member
stops receiving at once), the typing cache is refreshed, a removed or
leaving member is out of the room's running calls and AI answers at once
(they can neither rejoin nor signal), and the change is
posted in the room as a ``system`` message (``actors.room.post_as``; text is
the event as JSON, documented in docs/protocol.md). A refused request
changes nothing: every check runs before the first write.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import msgspec
from quart import Response

from bridge.accounts.tokens import AccessClaims
from bridge.errors import BadRequest, BridgeError, Forbidden, NotFound
from bridge.http.routing import Router, empty_response, json_response
from bridge.routes.schemas import NO_NUL, RoomName, RoomOut, UserId
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.base import Room, Store, new_id
from storage.contacts import group_add_refusals
from storage.groups import GroupProfile, group_store
from storage.media import attach_media, media_visible_to

log = logging.getLogger(__name__)

RANK = {"owner": 2, "admin": 1, "member": 0}
_NO_SUCH_ROOM = "No such room, or you are not a member."
SYSTEM_SENDER = "system"

Description = Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)]


class AddMembersRequest(msgspec.Struct, forbid_unknown_fields=True):
    user_ids: Annotated[list[UserId], msgspec.Meta(min_length=1, max_length=256)]


class UpdateGroupRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Any of the fields; absent ones stay as they are."""

    name: RoomName | None = None
    description: Description | None = None
    avatar_media_id: Annotated[
        str | None,
        msgspec.Meta(description="An image you uploaded (POST /media) or can read."),
    ] = None


class GroupOut(RoomOut, kw_only=True):
    description: str = ""
    avatar_media_id: str | None = None

    @classmethod
    def of_group(cls, room: Room, profile: GroupProfile) -> GroupOut:
        base = RoomOut.of(room)
        return cls(
            **{f: getattr(base, f) for f in base.__struct_fields__},
            description=profile.description,
            avatar_media_id=profile.avatar_media_id,
        )


class GroupEnvelope(msgspec.Struct):
    group: GroupOut


def problem_with(action: str, actor_role: str, target_role: str | None = None) -> str | None:
    """Why ``actor_role`` may not do ``action`` (to ``target_role``); None when allowed."""
    if action == "leave":
        return "The owner cannot leave the group." if actor_role == "owner" else None
    if RANK[actor_role] < RANK["admin"]:
        return "Only admins can manage this group."
    if target_role is None:
        return None  # add, rename, describe, avatar
    if target_role == "owner":
        return f"The owner cannot be {'removed' if action == 'remove' else action + 'd'}."
    if RANK[actor_role] <= RANK[target_role]:
        return "Only the owner can do that to an admin."
    return None


def add_routes(router: Router, services: BridgeServices) -> None:
    store = services.store
    groups = group_store(store)

    async def reply(room_id: str, status: int = 200) -> Response:
        room = await store.get_room(room_id)
        if room is None:
            raise NotFound(_NO_SUCH_ROOM)
        profile = await groups.get_profile(room_id)
        return json_response(GroupEnvelope(GroupOut.of_group(room, profile)), status=status)

    @router.route(
        "GET",
        "/rooms/<room_id>/group",
        summary="A group with its description and avatar",
        tag="groups",
        responses={200: GroupEnvelope},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def get_group(claims: AccessClaims, room_id: str) -> Response:
        await _group_role(store, room_id, claims.user_id)
        return await reply(room_id)

    @router.route(
        "POST",
        "/rooms/<room_id>/members",
        summary="Add members to a group (admins)",
        description="Users already in the group are skipped. Unknown ids refuse the whole call.",
        tag="groups",
        body=AddMembersRequest,
        responses={200: GroupEnvelope},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN),
    )
    async def add_members(claims: AccessClaims, room_id: str, body: AddMembersRequest) -> Response:
        me = claims.user_id
        room, role = await _group_role(store, room_id, me)
        _refuse(problem_with("add", role))
        wanted = list(dict.fromkeys(body.user_ids))
        if unknown := set(wanted) - await store.existing_user_ids(wanted):
            shown = ", ".join(sorted(unknown)[:5])
            raise BadRequest(f"Unknown user ids: {shown}.", field="user_ids")
        if refused := await group_add_refusals(store, me, wanted):
            raise Forbidden(
                "These users do not allow you to add them to groups: "
                + ", ".join(refused[:5])
                + "."
            )
        added = await groups.add_members(room_id, wanted, services.clock())
        if added:
            await _changed(services, room_id, {"ev": "members.added", "by": me, "users": added})
            if services.notifier is not None:
                await services.notifier.added_to_group(added, room_id, room.name, me)
        return await reply(room_id)

    @router.route(
        "DELETE",
        "/rooms/<room_id>/members/<user_id>",
        summary="Remove a member from a group (admins; never the owner)",
        tag="groups",
        responses={200: GroupEnvelope},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN),
    )
    async def remove_member(claims: AccessClaims, room_id: str, user_id: str) -> Response:
        me = claims.user_id
        room, role = await _group_role(store, room_id, me)
        target = _role_of(room, user_id)
        _refuse(problem_with("remove", role, target))
        if not await groups.remove_member(room_id, user_id):
            raise NotFound("That user is not a member of this group.", field="user_id")
        await _changed(services, room_id, {"ev": "member.removed", "by": me, "user": user_id})
        return await reply(room_id)

    async def change_role(me: str, room_id: str, user_id: str, action: str) -> Response:
        room, role = await _group_role(store, room_id, me)
        target = _role_of(room, user_id)
        if target is None:
            raise NotFound("That user is not a member of this group.", field="user_id")
        _refuse(problem_with(action, role, target))
        new, was = ("admin", "member") if action == "promote" else ("member", "admin")
        if target != was:
            raise BridgeError(
                f"That member is already {target_article(target)}.", code=ErrorCode.CONFLICT
            )
        if not await groups.set_role(room_id, user_id, new, was=was):
            raise BridgeError("The member role changed meanwhile; retry.", code=ErrorCode.CONFLICT)
        await _changed(services, room_id, {"ev": f"member.{action}d", "by": me, "user": user_id})
        return await reply(room_id)

    @router.route(
        "POST",
        "/rooms/<room_id>/members/<user_id>/promote",
        summary="Make a member an admin (admins)",
        tag="groups",
        responses={200: GroupEnvelope},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN, ErrorCode.CONFLICT),
    )
    async def promote(claims: AccessClaims, room_id: str, user_id: str) -> Response:
        return await change_role(claims.user_id, room_id, user_id, "promote")

    @router.route(
        "POST",
        "/rooms/<room_id>/members/<user_id>/demote",
        summary="Make an admin a plain member (the owner)",
        tag="groups",
        responses={200: GroupEnvelope},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN, ErrorCode.CONFLICT),
    )
    async def demote(claims: AccessClaims, room_id: str, user_id: str) -> Response:
        return await change_role(claims.user_id, room_id, user_id, "demote")

    @router.route(
        "POST",
        "/rooms/<room_id>/leave",
        summary="Leave a group (not the owner)",
        tag="groups",
        responses={204: None},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN),
    )
    async def leave(claims: AccessClaims, room_id: str) -> Response:
        me = claims.user_id
        _, role = await _group_role(store, room_id, me)
        _refuse(problem_with("leave", role))
        if not await groups.remove_member(room_id, me):
            raise NotFound(_NO_SUCH_ROOM)
        await _changed(services, room_id, {"ev": "member.left", "by": me, "user": me})
        return empty_response()

    @router.route(
        "PATCH",
        "/rooms/<room_id>/group",
        summary="Rename a group, or set its description or avatar (admins)",
        tag="groups",
        body=UpdateGroupRequest,
        responses={200: GroupEnvelope},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN),
    )
    async def update_group(
        claims: AccessClaims, room_id: str, body: UpdateGroupRequest
    ) -> Response:
        me = claims.user_id
        room, role = await _group_role(store, room_id, me)
        _refuse(problem_with("update", role))
        if body.name is None and body.description is None and body.avatar_media_id is None:
            raise BadRequest("Give a name, a description or an avatar_media_id.")
        if body.avatar_media_id is not None:
            media = await media_visible_to(store, body.avatar_media_id, me)
            if media is None or not media.is_image:
                raise BadRequest("No such image among your uploads.", field="avatar_media_id")
        # Validation is over: from here on every step is a change.
        events: list[dict[str, Any]] = []
        if body.name is not None and body.name != room.name:
            await groups.rename(room_id, body.name)
            events.append({"ev": "group.renamed", "by": me, "name": body.name})
        if body.description is not None or body.avatar_media_id is not None:
            if body.avatar_media_id is not None:
                await attach_media(store, body.avatar_media_id, room_id)
            await groups.set_profile(
                room_id, description=body.description, avatar_media_id=body.avatar_media_id
            )
            if body.description is not None:
                events.append({"ev": "group.description", "by": me, "text": body.description})
            if body.avatar_media_id is not None:
                events.append({"ev": "group.avatar", "by": me, "media": body.avatar_media_id})
        for event in events:
            await _announce(services, room_id, event)
        return await reply(room_id)


def target_article(role: str) -> str:
    return "an admin" if role == "admin" else f"a {role}"


def _refuse(problem: str | None) -> None:
    if problem is not None:
        raise Forbidden(problem)


async def _group_role(store: Store, room_id: str, user_id: str) -> tuple[Room, str]:
    room = await store.get_room(room_id)
    role = _role_of(room, user_id) if room is not None else None
    if room is None or role is None:
        raise NotFound(_NO_SUCH_ROOM)
    if room.kind != "group":
        raise BadRequest("Only groups have members to manage; this is a direct room.")
    return room, role


def _role_of(room: Room, user_id: str) -> str | None:
    return next((m.role for m in room.members if m.user_id == user_id), None)


async def _changed(services: BridgeServices, room_id: str, event: dict[str, Any]) -> None:
    """Membership changed: make every live component see it, and announce it.

    Someone who leaves or is removed hears the announcement as the room's last
    message to them (so their client learns why the room went quiet); someone
    added hears it as their first. Hence the order depends on the change.
    """
    leaving = event["ev"] in ("member.removed", "member.left")
    if leaving:
        await _announce(services, room_id, event)
    await _refresh(services, room_id)
    if leaving:
        await _cut_live_access(services, room_id, event["user"])
    else:
        await _announce(services, room_id, event)


async def _refresh(services: BridgeServices, room_id: str) -> None:
    if services.room_changed is not None:
        services.room_changed(room_id, False)
    if services.members is not None:
        services.members.invalidate(room_id)
        await services.members.members(room_id)  # reload now, so typing stops at once
    if services.typing is not None:
        services.typing.members_changed(room_id)
    if services.system is not None:
        from actors.room import ROOM, MembersChanged

        if services.system.is_live(ROOM, room_id):
            # Queued before any later post, so nothing after this reply
            # reaches a removed member.
            await services.system.ref(ROOM, room_id).tell(MembersChanged())


async def _cut_live_access(services: BridgeServices, room_id: str, user_id: str) -> None:
    """A member is gone: out of the room's running calls and AI answers at once."""
    if services.system is None:
        return
    if services.calls is not None:
        from actors.call import access_changed

        await access_changed(services.system, services.calls, [user_id], room=room_id)
    if services.ai is not None:
        await services.ai.member_left(room_id, user_id)


async def _announce(services: BridgeServices, room_id: str, event: dict[str, Any]) -> None:
    """Post ``event`` in the room as a ``system`` message whose text is the event as JSON.

    The change is already stored: a failure to announce it is logged, not
    turned into an error for a request that did what it was asked.
    """
    if services.system is None:
        return
    from actors.errors import ActorError
    from actors.room import post_as

    text = json.dumps(event, separators=(",", ":"))
    try:
        await post_as(
            services.system,
            room_id,
            SYSTEM_SENDER,
            new_id("sys_"),
            text,
            kind="system",
            system_sender=True,
        )
    except ActorError as exc:
        log.warning("room %s: %s not announced: %r", room_id, event["ev"], exc)
