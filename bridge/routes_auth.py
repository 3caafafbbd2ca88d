"""Sign-up, sign-in, token refresh and sign-out.

A login answers the same ``invalid_credentials`` for an unknown user and a
wrong password, and spends a password verify either way, so neither the
answer nor its timing tells which logins exist.
"""

from __future__ import annotations

from quart import Response

from bridge.errors import InvalidCredentials, RestCode
from bridge.routing import Router, empty_response, json_response
from bridge.schemas import (
    AuthResponse,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserOut,
)
from bridge.services import BridgeServices
from bridge.tokens import TokenPair
from protocol.errors import ErrorCode
from storage.base import User, new_id, now_ms


def add_routes(router: Router, services: BridgeServices) -> None:
    store, tokens, passwords = services.store, services.tokens, services.passwords

    @router.route(
        "POST",
        "/auth/register",
        summary="Create an account and sign in on this device",
        tag="auth",
        auth=False,
        body=RegisterRequest,
        responses={201: AuthResponse},
        errors=(ErrorCode.CONFLICT,),
    )
    async def register(body: RegisterRequest) -> Response:
        user = User(
            id=new_id("u_"),
            email=body.email,
            username=body.username,
            display_name=body.display_name or body.username,
            password_hash=await passwords.hash(body.password),
            created_at=now_ms(),
        )
        await store.create_user(user)  # Conflict(email|username) -> 409
        pair = await tokens.issue_pair(user, body.device)
        return json_response(_auth_response(user, pair), status=201)

    @router.route(
        "POST",
        "/auth/login",
        summary="Sign in with email or username",
        tag="auth",
        auth=False,
        body=LoginRequest,
        responses={200: AuthResponse},
        errors=(RestCode.INVALID_CREDENTIALS,),
    )
    async def login(body: LoginRequest) -> Response:
        user = await store.get_user_by_login(body.login)
        # Accounts made by phone or Google have no password until they set one.
        if user is None or user.password_hash is None:
            await passwords.verify_dummy(body.password)
            raise InvalidCredentials()
        if not await passwords.verify(user.password_hash, body.password):
            raise InvalidCredentials()
        pair = await tokens.issue_pair(user, body.device)
        return json_response(_auth_response(user, pair))

    @router.route(
        "POST",
        "/auth/refresh",
        summary="Trade a refresh token for a new pair (the old one stops working)",
        description=(
            "Refresh tokens are single-use. Presenting one that was already used "
            "signs the whole device session out and answers `token_reused`."
        ),
        tag="auth",
        auth=False,
        body=RefreshRequest,
        responses={200: TokenResponse},
        errors=(ErrorCode.UNAUTHORIZED, ErrorCode.TOKEN_EXPIRED, RestCode.TOKEN_REUSED),
    )
    async def refresh(body: RefreshRequest) -> Response:
        pair = await tokens.rotate(body.refresh_token)
        return json_response(
            TokenResponse(
                access_token=pair.access_token,
                refresh_token=pair.refresh_token,
                expires_in=pair.expires_in,
            )
        )

    @router.route(
        "POST",
        "/auth/logout",
        summary="Sign this device session out (revokes its refresh tokens)",
        description=(
            "Always 204, also for unknown tokens. Access tokens already issued "
            "stay valid until they expire."
        ),
        tag="auth",
        auth=False,
        body=RefreshRequest,
        responses={204: None},
    )
    async def logout(body: RefreshRequest) -> Response:
        await tokens.revoke(body.refresh_token)
        return empty_response()


def _auth_response(user: User, pair: TokenPair) -> AuthResponse:
    return AuthResponse(
        user=UserOut.of(user),
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )
