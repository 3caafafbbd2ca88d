"""Calls over REST: history, one call, quality feedback, and the ICE servers to use.

The calls themselves run over the socket (``call.*`` frames, ``actors.call``);
this is what is request/response by nature. A call you were not involved in
answers 404 exactly like one that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from quart import Response

from bridge.accounts.tokens import AccessClaims
from bridge.calls.turn import ice_servers
from bridge.errors import BadRequest, BridgeError, Forbidden, NotFound
from bridge.http.routing import Router, json_response
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from protocol.frames_calls import IceServer
from storage.calls import CallParticipantRecord, CallRecord, CallStore, calls_store

_NO_SUCH_CALL = "No such call, or you were not part of it."


class CallParticipantOut(msgspec.Struct):
    user_id: str
    status: Annotated[
        str,
        msgspec.Meta(
            description="ringing | joined | reconnecting | left | declined | missed | busy"
        ),
    ]
    device: str | None
    joined_at: int | None
    left_at: int | None

    @classmethod
    def of(cls, p: CallParticipantRecord) -> CallParticipantOut:
        return cls(p.user_id, p.status, p.device, p.joined_at, p.left_at)


class FeedbackOut(msgspec.Struct):
    rating: int
    comment: str
    rated_at: int


class CallOut(msgspec.Struct, kw_only=True):
    id: str
    room_id: str
    caller_id: str
    kind: Annotated[str, msgspec.Meta(description="audio | video")]
    group: bool
    state: Annotated[str, msgspec.Meta(description="ringing | active | ended")]
    outcome: Annotated[
        str | None,
        msgspec.Meta(description="answered | declined | busy | missed | cancelled | failed"),
    ]
    started_at: int
    answered_at: int | None
    ended_at: int | None
    duration_ms: Annotated[
        int | None, msgspec.Meta(description="ended_at - answered_at: talk time, if answered")
    ]
    participants: list[CallParticipantOut]  # invitation order, the caller first
    feedback: Annotated[
        FeedbackOut | None, msgspec.Meta(description="Your own feedback, if you gave one.")
    ]

    @classmethod
    def of(cls, call: CallRecord, user_id: str) -> CallOut:
        mine = call.participant(user_id)
        feedback = None
        if mine is not None and mine.rating is not None and mine.rated_at is not None:
            feedback = FeedbackOut(mine.rating, mine.comment or "", mine.rated_at)
        return cls(
            id=call.id,
            room_id=call.room_id,
            caller_id=call.caller_id,
            kind=call.kind,
            group=call.is_group,
            state=call.state,
            outcome=call.outcome,
            started_at=call.started_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            duration_ms=call.duration_ms,
            participants=[CallParticipantOut.of(p) for p in call.participants],
            feedback=feedback,
        )


class CallEnvelope(msgspec.Struct):
    call: CallOut


class CallPage(msgspec.Struct):
    calls: list[CallOut]  # newest first
    has_more: bool


class CallHistoryQuery(msgspec.Struct, frozen=True):
    room: Annotated[str | None, msgspec.Meta(description="Only calls in this room.")] = None
    before: Annotated[
        str | None, msgspec.Meta(description="Only calls older than this call id (paging).")
    ] = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50


class FeedbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    rating: Annotated[int, msgspec.Meta(ge=1, le=5, description="1 (bad) to 5 (excellent)")]
    comment: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class IceServersOut(msgspec.Struct):
    ice_servers: list[IceServer]
    ttl: Annotated[int, msgspec.Meta(description="Seconds the TURN credentials stay valid.")]


def add_routes(router: Router, services: BridgeServices) -> None:
    settings = services.settings
    calls = calls_store(services.store)

    @router.route(
        "GET",
        "/calls",
        summary="Your call history, newest first",
        description=(
            "Every call you were involved in (placed, rung, joined, or found busy). "
            "Page with `before` = the last id of the previous page while `has_more`."
        ),
        tag="calls",
        query=CallHistoryQuery,
        responses={200: CallPage},
    )
    async def list_calls(claims: AccessClaims, query: CallHistoryQuery) -> Response:
        found = await calls.list_calls(
            claims.user_id, room_id=query.room, before=query.before, limit=query.limit + 1
        )
        page = found[: query.limit]
        return json_response(
            CallPage([CallOut.of(c, claims.user_id) for c in page], len(found) > query.limit)
        )

    @router.route(
        "GET",
        "/calls/ice-servers",
        summary="The STUN/TURN servers to give RTCPeerConnection",
        description=(
            "TURN entries carry short-lived credentials (TURN REST scheme); without a "
            "configured TURN secret only STUN servers are listed. The same list comes "
            "in the `call.ok` and `call.ring` frames."
        ),
        tag="calls",
        responses={200: IceServersOut},
        uses_store=False,
    )
    async def get_ice_servers(claims: AccessClaims) -> Response:
        servers = ice_servers(settings, claims.user_id, services.clock() / 1000)
        return json_response(IceServersOut(servers, settings.call_turn_ttl))

    @router.route(
        "GET",
        "/calls/<call_id>",
        summary="One call you were involved in",
        tag="calls",
        responses={200: CallEnvelope},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def get_call(claims: AccessClaims, call_id: str) -> Response:
        call = await _my_call(calls, call_id, claims.user_id)
        return json_response(CallEnvelope(CallOut.of(call, claims.user_id)))

    @router.route(
        "POST",
        "/calls/<call_id>/feedback",
        summary="Rate the quality of a call you were in",
        description=(
            "Once the call has ended (409 `conflict` before), by a user who was in it "
            "(403 `forbidden` for one who never joined). Sending again replaces it."
        ),
        tag="calls",
        body=FeedbackRequest,
        responses={200: FeedbackOut},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN, ErrorCode.CONFLICT),
    )
    async def give_feedback(claims: AccessClaims, call_id: str, body: FeedbackRequest) -> Response:
        if "\x00" in body.comment:
            raise BadRequest("The comment must not contain NUL.", field="comment")
        call = await _my_call(calls, call_id, claims.user_id)
        mine = call.participant(claims.user_id)
        if mine is None or mine.joined_at is None:
            raise Forbidden("Only users who were in the call can rate it.")
        if call.state != "ended":
            raise BridgeError("The call has not ended yet.", code=ErrorCode.CONFLICT)
        at = services.clock()
        if not await calls.set_feedback(call.id, claims.user_id, body.rating, body.comment, at):
            raise NotFound(_NO_SUCH_CALL)
        return json_response(FeedbackOut(body.rating, body.comment, at))


async def _my_call(calls: CallStore, call_id: str, user_id: str) -> CallRecord:
    call = await calls.get_call(call_id)
    if call is None or call.participant(user_id) is None:
        raise NotFound(_NO_SUCH_CALL)
    return call
