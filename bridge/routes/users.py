"""Your own account, and other users' public profiles."""

from __future__ import annotations

from quart import Response

from bridge.accounts.tokens import AccessClaims
from bridge.errors import NotFound, TokenInvalid
from bridge.http.routing import Router, json_response
from bridge.routes.schemas import PublicUser, UpdateMeRequest, UserOut
from bridge.services import BridgeServices
from protocol.errors import ErrorCode

# A valid token whose user is gone (deleted by an admin) is no longer a sign-in.
_GONE = "The account of this token no longer exists; sign in again."


def add_routes(router: Router, services: BridgeServices) -> None:
    store = services.store

    @router.route("GET", "/me", summary="Your account", tag="users", responses={200: UserOut})
    async def get_me(claims: AccessClaims) -> Response:
        user = await store.get_user(claims.user_id)
        if user is None:
            raise TokenInvalid(_GONE)
        return json_response(UserOut.of(user))

    @router.route(
        "PATCH",
        "/me",
        summary="Change your display name",
        tag="users",
        body=UpdateMeRequest,
        responses={200: UserOut},
    )
    async def update_me(claims: AccessClaims, body: UpdateMeRequest) -> Response:
        user = await store.update_user(claims.user_id, display_name=body.display_name)
        if user is None:
            raise TokenInvalid(_GONE)
        return json_response(UserOut.of(user))

    @router.route(
        "GET",
        "/users/<user_id>",
        summary="A user's public profile",
        tag="users",
        responses={200: PublicUser},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def get_user(claims: AccessClaims, user_id: str) -> Response:
        user = await store.get_user(user_id)
        if user is None:
            raise NotFound("No such user.")
        return json_response(PublicUser.of(user))
