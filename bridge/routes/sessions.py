"""Your signed-in devices, and signing one (or all others) out from here.

A session is a refresh-token family (``bridge.accounts.tokens``): one per sign-in on a
device, living on through refreshes. Signing one out revokes its refresh
tokens, refuses its access tokens on this node from now on, and closes its
open sockets at once with 4104 ``SESSION_REVOKED`` (``Onboarding.end_sessions``).
"""

from __future__ import annotations

from quart import Response

from bridge.accounts.onboarding import Onboarding
from bridge.accounts.tokens import AccessClaims
from bridge.errors import NotFound
from bridge.http.routing import Router, empty_response, json_response
from bridge.routes.schemas_onboarding import SessionList, SessionOut
from bridge.services import BridgeServices
from protocol.errors import ErrorCode


def add_routes(router: Router, services: BridgeServices) -> None:
    onboarding = Onboarding.of(services)

    @router.route(
        "GET",
        "/me/sessions",
        summary="Your signed-in devices, most recently active first",
        tag="users",
        responses={200: SessionList},
    )
    async def list_sessions(claims: AccessClaims) -> Response:
        found = await onboarding.accounts.list_sessions(claims.user_id, onboarding.now_ms())
        return json_response(
            SessionList(
                [
                    SessionOut(
                        id=s.session_id,
                        device=s.device,
                        signed_in_at=s.signed_in_at,
                        last_active_at=s.last_active_at,
                        expires_at=s.expires_at,
                        current=s.session_id == claims.session_id,
                    )
                    for s in found
                ]
            )
        )

    @router.route(
        "DELETE",
        "/me/sessions/<session_id>",
        summary="Sign one of your devices out; its socket closes at once",
        tag="users",
        responses={204: None},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def end_session(claims: AccessClaims, session_id: str) -> Response:
        if not await onboarding.end_sessions(claims.user_id, only=session_id):
            raise NotFound("No such active session of yours.")
        return empty_response()

    @router.route(
        "DELETE",
        "/me/sessions",
        summary="Sign out every device but this one",
        tag="users",
        responses={204: None},
    )
    async def end_other_sessions(claims: AccessClaims) -> Response:
        await onboarding.end_sessions(claims.user_id, keep=claims.session_id)
        return empty_response()
