"""The chat list (issue 18): per-user chat settings and starred messages.

Rooms you are not in answer 404 ``not_found`` like rooms that do not exist.
Every change is pushed to all the user's online devices (``chat.settings``,
``msg.starred``); a device that was offline reads ``GET /rooms`` and
``GET /me/starred`` when it reconnects (the pushes are not replayed).
Time (mute expiry, the archive rule) is read from ``services.clock`` only.
"""

from __future__ import annotations

from quart import Response

from bridge.accounts.tokens import AccessClaims
from bridge.chats.chatlist import MUTE_DURATIONS, push_settings, settings_data
from bridge.errors import BadRequest, BridgeError, NotFound, RestCode
from bridge.http.routing import Router, json_response
from bridge.routes.schemas import MessageOut, RoomSummaryOut
from bridge.routes.schemas_chatlist import (
    ChatList,
    ChatListQuery,
    ChatSummaryOut,
    SettingsPatch,
    StarOut,
    StarredOut,
    StarredPage,
    StarredQuery,
)
from bridge.services import BridgeServices
from protocol import codec
from protocol.errors import ErrorCode
from protocol.frames_chatlist import ChatSettingsData, MsgStarred, StarredData
from storage.base import Store
from storage.chatlist import (
    FIRST_PAGE,
    KEEP,
    MAX_PINNED,
    MUTE_FOREVER,
    Keep,
    PinLimitReached,
    SettingsChange,
    chatlist_store,
)
from storage.messages_rich import rich_store

_NO_SUCH_ROOM = "No such room, or you are not a member."
_NO_SUCH_MESSAGE = "No such message in this room."


def add_routes(router: Router, services: BridgeServices) -> None:
    store = services.store
    chats = chatlist_store(store)

    @router.route(
        "GET",
        "/rooms",
        summary="Your chat list: pinned chats first, then by most recent activity",
        description=(
            "Each room carries your `settings`. Pinned chats come first, the newest "
            "pin on top, then the others by their last message. `archived=false` "
            "(the default) is the main list, `archived=true` the archive; an archived "
            "chat is back in the main list once a message arrives after it was "
            "archived, unless it is muted."
        ),
        tag="rooms",
        query=ChatListQuery,
        responses={200: ChatList},
    )
    async def list_rooms(claims: AccessClaims, query: ChatListQuery) -> Response:
        me, now = claims.user_id, services.clock()
        rows = await chats.list_chats(
            me, archived=query.archived, now=now, limit=query.limit, offset=query.offset
        )
        out = []
        for summary, settings in rows:
            base = RoomSummaryOut.of_summary(summary, me)
            out.append(
                ChatSummaryOut(
                    id=base.id,
                    kind=base.kind,
                    name=base.name,
                    created_by=base.created_by,
                    created_at=base.created_at,
                    members=base.members,
                    last_message=base.last_message,
                    last_seq=base.last_seq,
                    read_seq=base.read_seq,
                    unread=base.unread,
                    settings=settings_data(settings, now),
                )
            )
        return json_response(ChatList(out))

    @router.route(
        "GET",
        "/rooms/<room_id>/settings",
        summary="Your settings of one chat",
        tag="chats",
        responses={200: ChatSettingsData},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def get_settings(claims: AccessClaims, room_id: str) -> Response:
        await _check_member(store, room_id, claims.user_id)
        settings = await chats.get(claims.user_id, room_id)
        return json_response(settings_data(settings, services.clock()))

    @router.route(
        "PATCH",
        "/rooms/<room_id>/settings",
        summary="Mute, pin, archive, mark unread, or choose notifications for a chat",
        description=(
            "Fields left out stay as they are. `mute`: `8h`, `1w`, `always` or `off`; "
            "or `mute_until` (ms since the epoch). At most 5 chats can be pinned: "
            "another pin answers 409 `too_many_pinned`. Archiving unpins; pinning "
            "unarchives. Your other devices get a `chat.settings` push."
        ),
        tag="chats",
        body=SettingsPatch,
        responses={200: ChatSettingsData},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.INVALID, RestCode.TOO_MANY_PINNED),
    )
    async def patch_settings(claims: AccessClaims, room_id: str, body: SettingsPatch) -> Response:
        me, now = claims.user_id, services.clock()
        change = _change_of(body, now)
        await _check_member(store, room_id, me)
        try:
            settings = await chats.update(me, room_id, change, now, MAX_PINNED)
        except PinLimitReached as exc:
            raise BridgeError(
                f"At most {exc.limit} chats can be pinned; unpin one first.",
                code=RestCode.TOO_MANY_PINNED,
                field="pinned",
            ) from exc
        push_settings(services.push_to_user, me, settings, now)
        return json_response(settings_data(settings, now))

    @router.route(
        "PUT",
        "/rooms/<room_id>/messages/<int:seq>/star",
        summary="Star a message",
        description="Idempotent: starring again keeps the first star's time.",
        tag="chats",
        responses={200: StarOut},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def star(claims: AccessClaims, room_id: str, seq: int) -> Response:
        me, now = claims.user_id, services.clock()
        await _check_member(store, room_id, me)
        await _check_visible(store, room_id, seq, me)
        at = await chats.star(me, room_id, seq, now)
        _push_star(services, me, StarredData(room=room_id, seq=seq, on=True, at=at))
        return json_response(StarOut(room_id, seq, starred=True, starred_at=at))

    @router.route(
        "DELETE",
        "/rooms/<room_id>/messages/<int:seq>/star",
        summary="Unstar a message",
        description="Idempotent: unstarring a message that is not starred answers the same.",
        tag="chats",
        responses={200: StarOut},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def unstar(claims: AccessClaims, room_id: str, seq: int) -> Response:
        me = claims.user_id
        await _check_member(store, room_id, me)
        if await chats.unstar(me, room_id, seq):
            at = services.clock()
            _push_star(services, me, StarredData(room=room_id, seq=seq, on=False, at=at))
        return json_response(StarOut(room_id, seq, starred=False))

    @router.route(
        "GET",
        "/me/starred",
        summary="Your starred messages across rooms, newest star first",
        description=(
            "Paged with `cursor` (the previous page's `next_cursor`). Messages deleted "
            "for everyone or for you, and those of rooms you left, are not listed."
        ),
        tag="chats",
        query=StarredQuery,
        responses={200: StarredPage},
        errors=(ErrorCode.INVALID,),
    )
    async def starred(claims: AccessClaims, query: StarredQuery) -> Response:
        before = FIRST_PAGE if query.cursor is None else _parse_cursor(query.cursor)
        found = await chats.starred(claims.user_id, before, query.limit + 1)
        page = found[: query.limit]
        more = len(found) > query.limit
        return json_response(
            StarredPage(
                [StarredOut(s.starred_at, MessageOut.of(s.message)) for s in page],
                next_cursor=_format_cursor(page[-1].cursor) if more else None,
            )
        )


def _change_of(body: SettingsPatch, now: int) -> SettingsChange:
    muted_until: int | None | Keep = KEEP
    if body.mute is not None and body.mute_until is not None:
        raise BadRequest("Give either 'mute' or 'mute_until', not both.", field="mute_until")
    if body.mute is not None:
        if body.mute not in MUTE_DURATIONS:
            raise BadRequest(
                f"Unknown mute duration {body.mute[:20]!r}; use one of "
                + ", ".join(MUTE_DURATIONS)
                + ".",
                field="mute",
            )
        length = MUTE_DURATIONS[body.mute]
        if length is None or length == MUTE_FOREVER:
            muted_until = length
        else:
            muted_until = now + length
    elif body.mute_until is not None:
        if body.mute_until <= now:
            raise BadRequest("'mute_until' must be in the future.", field="mute_until")
        muted_until = body.mute_until
    if body.pinned and body.archived:
        raise BadRequest("A chat cannot be pinned and archived at once.", field="archived")
    return SettingsChange(
        muted_until=muted_until,
        pinned=body.pinned,
        archived=body.archived,
        marked_unread=body.marked_unread,
        notify=body.notify,
    )


async def _check_member(store: Store, room_id: str, user_id: str) -> None:
    room = await store.get_room(room_id)
    if room is None or all(m.user_id != user_id for m in room.members):
        raise NotFound(_NO_SUCH_ROOM)


async def _check_visible(store: Store, room_id: str, seq: int, user_id: str) -> None:
    rich = rich_store(store)
    message = await rich.message_at(room_id, seq)
    if message is None or message.deleted_at is not None:
        raise NotFound(_NO_SUCH_MESSAGE)
    if await rich.hidden(room_id, user_id, [seq]):
        raise NotFound(_NO_SUCH_MESSAGE)


def _push_star(services: BridgeServices, user_id: str, data: StarredData) -> None:
    if services.push_to_user is not None:
        services.push_to_user(user_id, codec.encode(MsgStarred(d=data)))


def _format_cursor(cursor: tuple[int, str, int]) -> str:
    at, room, seq = cursor
    return f"{at}.{seq}.{room}"


def _parse_cursor(text: str) -> tuple[int, str, int]:
    try:
        at, seq, room = text.split(".", 2)
        return int(at), room, int(seq)
    except ValueError:
        raise BadRequest("This is not a cursor this server gave.", field="cursor") from None
