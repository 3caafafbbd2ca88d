"""Rooms: create, list, read one, page through history, move the read cursor.

Every room route answers 404 ``not_found`` both for a room that does not exist
and for one the caller is not a member of: ids cannot be probed.

History pages are in ascending seq whichever way they were asked for, so a
client appends or prepends a page without re-sorting. ``has_more`` looks one
message beyond the page (we fetch ``limit + 1``) rather than counting.
"""

from __future__ import annotations

from quart import Response

from actors.errors import ActorError
from actors.room_changes import change_as
from bridge.accounts.tokens import AccessClaims
from bridge.chats.chatlist import clear_marked_unread
from bridge.errors import BadRequest, BridgeError, Forbidden, NotFound
from bridge.http.routing import Router, json_response
from bridge.routes import chatlist as routes_chatlist
from bridge.routes.schemas import (
    MAX_SEQ,
    CreateDirectRoom,
    CreateGroupRoom,
    CreateRoomRequest,
    HistoryQuery,
    MessageOut,
    MessagePage,
    ReadRequest,
    ReadResponse,
    RoomEnvelope,
    RoomOut,
)
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from protocol.frames_chat import ReceiptData
from storage.base import Room, RoomMember, Store, new_id
from storage.contacts import group_add_refusals

_NO_SUCH_ROOM = "No such room, or you are not a member."


def add_routes(router: Router, services: BridgeServices) -> None:
    store = services.store

    @router.route(
        "POST",
        "/rooms",
        summary="Open a direct room with a user, or create a group",
        description=(
            "Direct rooms are idempotent: the same pair always gets the same room, "
            "answered 200 when it already existed and 201 when it was created. "
            "In a group the creator is its owner."
        ),
        tag="rooms",
        body=CreateRoomRequest,
        responses={201: RoomEnvelope, 200: RoomEnvelope},
    )
    async def create_room(claims: AccessClaims, body: CreateRoomRequest) -> Response:
        me = claims.user_id
        match body:
            case CreateDirectRoom(user_id=other):
                wanted = await _direct_room(store, me, other, services.clock())
            case CreateGroupRoom():
                wanted = await _group_room(store, me, body, services.clock())
            case _:
                raise AssertionError(f"unhandled room request {body!r}")
        room = await store.create_room(wanted)
        created = room.id == wanted.id
        if created and services.room_changed is not None:
            services.room_changed(room.id, False)
        if created and room.kind == "group" and services.notifier is not None:
            others = [m.user_id for m in room.members if m.user_id != me]
            await services.notifier.added_to_group(others, room.id, room.name, me)
        return json_response(RoomEnvelope(RoomOut.of(room)), status=201 if created else 200)

    @router.route(
        "GET",
        "/rooms/<room_id>",
        summary="One of your rooms",
        tag="rooms",
        responses={200: RoomEnvelope},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def get_room(claims: AccessClaims, room_id: str) -> Response:
        room = await _member_room(store, room_id, claims.user_id)
        return json_response(RoomEnvelope(RoomOut.of(room)))

    @router.route(
        "GET",
        "/rooms/<room_id>/messages",
        summary="A page of a room's history, in ascending seq",
        description=(
            "With `before`: the `limit` messages just below that seq. With `after`: "
            "the `limit` messages just above it. With neither: the latest `limit`. "
            "`has_more` says whether more exist beyond the page in that direction."
        ),
        tag="rooms",
        query=HistoryQuery,
        responses={200: MessagePage},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def history(claims: AccessClaims, room_id: str, query: HistoryQuery) -> Response:
        if query.before is not None and query.after is not None:
            raise BadRequest("Give either 'before' or 'after', not both.", field="after")
        await _member_room(store, room_id, claims.user_id)
        if query.after is not None:
            found = await store.messages_after(room_id, query.after, query.limit + 1)
            page = found[: query.limit]
        else:
            before = query.before if query.before is not None else MAX_SEQ
            found = await store.messages_before(room_id, before, query.limit + 1)
            page = found[-query.limit :]
        return json_response(
            MessagePage([MessageOut.of(m) for m in page], has_more=len(found) > query.limit)
        )

    @router.route(
        "POST",
        "/rooms/<room_id>/read",
        summary="Mark the room read up to a seq",
        description=(
            "Exactly the socket's `rcpt` with `read`: the cursor never moves back, a seq "
            "beyond the room's last message is clamped to it, the room's members get "
            "`rcpt.update` (with a new `ev`) and the reader's other devices get it with "
            'their unread count. It also clears the chat\'s "marked unread" flag '
            "(`chat.settings` to your devices). Answers the stored cursor."
        ),
        tag="rooms",
        body=ReadRequest,
        responses={200: ReadResponse},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.UNAVAILABLE),
    )
    async def mark_read(claims: AccessClaims, room_id: str, body: ReadRequest) -> Response:
        if services.system is None:
            raise BridgeError("Read receipts need the realtime node.", code=ErrorCode.UNAVAILABLE)
        try:
            done = await change_as(
                services.system, room_id, claims.user_id, ReceiptData(room=room_id, read=body.seq)
            )
        except ActorError as exc:
            if exc.code == ErrorCode.NOT_MEMBER:
                raise NotFound(_NO_SUCH_ROOM) from exc
            raise BridgeError(exc.message, code=exc.code) from exc
        assert done.read is not None
        # Reading a chat clears its "marked unread" flag (issue 18).
        await clear_marked_unread(
            store, services.push_to_user, claims.user_id, room_id, services.clock()
        )
        return json_response(ReadResponse(done.read))

    # The chat list (issue 18) owns GET /rooms (with each room's settings) and
    # the per-chat settings and star routes.
    routes_chatlist.add_routes(router, services)


async def _member_room(store: Store, room_id: str, user_id: str) -> Room:
    room = await store.get_room(room_id)
    if room is None or all(m.user_id != user_id for m in room.members):
        raise NotFound(_NO_SUCH_ROOM)
    return room


async def _direct_room(store: Store, me: str, other: str, at: int) -> Room:
    if other == me:
        raise BadRequest("A direct room needs another user.", field="user_id")
    if not await store.existing_user_ids([other]):
        raise BadRequest("No such user.", field="user_id")
    return Room(
        id=new_id("r_"),
        kind="direct",
        name="",
        created_by=me,
        created_at=at,
        members=(RoomMember(me, "member"), RoomMember(other, "member")),
        direct_key=":".join(sorted((me, other))),
    )


async def _group_room(store: Store, me: str, body: CreateGroupRoom, at: int) -> Room:
    # dict.fromkeys dedupes and keeps the order the client gave.
    others = [u for u in dict.fromkeys(body.members) if u != me]
    known = await store.existing_user_ids(others) if others else set()
    if unknown := set(others) - known:
        shown = ", ".join(sorted(unknown)[:5])
        raise BadRequest(f"Unknown user ids: {shown}.", field="members")
    if refused := await group_add_refusals(store, me, others):
        raise Forbidden(
            "These users do not allow you to add them to groups: " + ", ".join(refused[:5]) + "."
        )
    members = (RoomMember(me, "owner"), *(RoomMember(u, "member") for u in others))
    return Room(
        id=new_id("r_"),
        kind="group",
        name=body.name,
        created_by=me,
        created_at=at,
        members=members,
    )
