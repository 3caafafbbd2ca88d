"""Pinned messages and disappearing messages over REST (issue 18, items 3 and 4).

Every change goes to the room actor as the socket's ``msg.pin`` /
``room.disappear`` would (``change_as``): same rules, same ``ev``, same pushes
to every member's devices. Reads ask the actor too, so they see what it
holds. A room the caller is not in answers 404, like every room route.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from quart import Response

from actors.errors import ActorError
from actors.room import ROOM, GetPins, PinsView
from actors.room_changes import ChangeDone, ChangeOp, change_as
from actors.runtime import ActorSystem
from bridge.accounts.tokens import AccessClaims
from bridge.errors import BadRequest, BridgeError, NotFound
from bridge.http.routing import Router, json_response
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from protocol.frames import Message
from protocol.frames_chat import DISAPPEAR_TTLS, DisappearData, DisappearTtl, PinData

_NO_SUCH_ROOM = "No such room, or you are not a member."
_TTL_OF_MS = {ms: name for name, ms in DISAPPEAR_TTLS.items()}


class PinOut(msgspec.Struct):
    seq: int
    by: str  # who pinned it
    at: int  # when, ms since the Unix epoch
    message: Message


class PinsOut(msgspec.Struct):
    pins: list[PinOut]  # oldest pin first; at most 3
    disappearing: str  # the room's timer: off | 24h | 7d | 90d
    ev: int  # the room's last change event: what these reflect


class ChangeOut(msgspec.Struct, omit_defaults=True):
    """``ev`` of the change event; absent when nothing changed (already so)."""

    ev: int | None = None


class DisappearingRequest(msgspec.Struct, forbid_unknown_fields=True):
    ttl: Annotated[DisappearTtl, msgspec.Meta(description="off | 24h | 7d | 90d")]


def add_routes(router: Router, services: BridgeServices) -> None:
    def system() -> ActorSystem:
        if services.system is None:
            raise BridgeError("This needs the realtime node.", code=ErrorCode.UNAVAILABLE)
        return services.system

    async def change(room_id: str, user_id: str, op: ChangeOp) -> ChangeDone:
        try:
            return await change_as(system(), room_id, user_id, op)
        except ActorError as exc:
            if exc.code == ErrorCode.NOT_MEMBER:
                raise NotFound(_NO_SUCH_ROOM) from exc
            raise BridgeError(exc.message, code=exc.code) from exc

    @router.route(
        "GET",
        "/rooms/<room_id>/pins",
        summary="The room's pinned messages and disappearing-messages timer",
        description=(
            "Pinned messages oldest first (at most 3), each with who pinned it and the "
            "message as the socket shows it; a message deleted for everyone (or expired) "
            "is no longer pinned. `disappearing` is the timer for new messages."
        ),
        tag="rooms",
        responses={200: PinsOut},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.UNAVAILABLE),
    )
    async def get_pins(claims: AccessClaims, room_id: str) -> Response:
        try:
            view = await system().ref(ROOM, room_id).ask(GetPins(claims.user_id))
        except ActorError as exc:
            if exc.code == ErrorCode.NOT_MEMBER:
                raise NotFound(_NO_SUCH_ROOM) from exc
            raise BridgeError(exc.message, code=exc.code) from exc
        assert isinstance(view, PinsView)
        pins = [PinOut(p.seq, p.pinned_by, p.pinned_at, m) for p, m in view.pins]
        return json_response(PinsOut(pins, _TTL_OF_MS.get(view.disappear_ms, "off"), view.last_ev))

    @router.route(
        "PUT",
        "/rooms/<room_id>/pins/<seq>",
        summary="Pin a message (group admins; either member of a direct room)",
        description=(
            "Exactly the socket's `msg.pin`: members get `msg.pinned` with a new `ev`. "
            "Pinning a pinned message changes nothing (no `ev`). A fourth pin answers 409 "
            "`pin_limit`; a plain group member 403 `forbidden`; an unknown or deleted "
            "message 404 `not_found`."
        ),
        tag="rooms",
        responses={200: ChangeOut},
        errors=(
            ErrorCode.NOT_FOUND,
            ErrorCode.FORBIDDEN,
            ErrorCode.PIN_LIMIT,
            ErrorCode.INVALID,
            ErrorCode.UNAVAILABLE,
        ),
    )
    async def pin_message(claims: AccessClaims, room_id: str, seq: str) -> Response:
        done = await change(room_id, claims.user_id, PinData(room_id, _seq(seq)))
        return json_response(ChangeOut(done.ev))

    @router.route(
        "DELETE",
        "/rooms/<room_id>/pins/<seq>",
        summary="Unpin a message (group admins; either member of a direct room)",
        description=(
            "Exactly the socket's `msg.pin` with `off`: members get `msg.pinned` with `off` "
            "and a new `ev`. Unpinning what is not pinned changes nothing (no `ev`)."
        ),
        tag="rooms",
        responses={200: ChangeOut},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN, ErrorCode.INVALID),
    )
    async def unpin_message(claims: AccessClaims, room_id: str, seq: str) -> Response:
        done = await change(room_id, claims.user_id, PinData(room_id, _seq(seq), off=True))
        return json_response(ChangeOut(done.ev))

    @router.route(
        "PUT",
        "/rooms/<room_id>/disappearing",
        summary="Set the disappearing-messages timer (group admins; direct rooms: either)",
        description=(
            "Exactly the socket's `room.disappear`: `ttl` is `off`, `24h`, `7d` or `90d`. "
            "Members get `room.disappearing` with a new `ev` and a `system` message "
            'announcing it (`{"ev":"disappearing","by":...,"ttl":...}`). Messages sent from '
            "then on carry `expires_at` and are deleted for everyone when it passes."
        ),
        tag="rooms",
        body=DisappearingRequest,
        responses={200: ChangeOut},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN, ErrorCode.INVALID),
    )
    async def set_disappearing(
        claims: AccessClaims, room_id: str, body: DisappearingRequest
    ) -> Response:
        done = await change(room_id, claims.user_id, DisappearData(room_id, body.ttl))
        return json_response(ChangeOut(done.ev))


def _seq(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 2**53:
        raise BadRequest("A message seq is a positive integer.", field="seq")
    return int(raw)
