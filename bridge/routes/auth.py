"""Sign-up, sign-in, token refresh and sign-out.

A login answers the same ``invalid_credentials`` for an unknown user and a
wrong password, and spends a password verify either way, so neither the
answer nor its timing tells which logins exist.

Login, sign-up and refresh pass the velocity limits first
(``bridge.accounts.ratelimit``): 429 ``rate_limited`` with ``Retry-After``, and a
refused try checks no password. A right password clears the back-off of that
login from that address.

An email address typed at sign-up, or on a profile, is not proven: it blocks
nobody. Signing up with an address another account holds unverified takes it
from that account (``storage.onboarding``); a verified address is 409.
"""

from __future__ import annotations

from quart import Response

from bridge.accounts.onboarding import Onboarding
from bridge.accounts.tokens import TokenPair
from bridge.errors import InvalidCredentials, RestCode
from bridge.http.client_address import client_ip
from bridge.http.routing import Router, empty_response, json_response
from bridge.routes.schemas import (
    AuthResponse,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserOut,
)
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.base import User, new_id


def add_routes(router: Router, services: BridgeServices) -> None:
    store, tokens, passwords = services.store, services.tokens, services.passwords
    onboarding = Onboarding.of(services)
    limits = onboarding.limits

    @router.route(
        "POST",
        "/auth/register",
        summary="Create an account and sign in on this device",
        tag="auth",
        auth=False,
        body=RegisterRequest,
        description=(
            "Limited per client address (REGISTER_PER_IP): 429 with `Retry-After`. "
            "An email another account holds unverified is taken from it; a "
            "verified one answers 409."
        ),
        responses={201: AuthResponse},
        errors=(ErrorCode.CONFLICT, ErrorCode.RATE_LIMITED),
    )
    async def register(body: RegisterRequest) -> Response:
        await limits.before_register(client_ip())
        # An unverified address is no claim: whoever signs up with it takes it.
        await onboarding.accounts.release_unverified_email(body.email, None)
        user = User(
            id=new_id("u_"),
            email=body.email,
            username=body.username,
            display_name=body.display_name or body.username,
            password_hash=await passwords.hash(body.password),
            created_at=services.clock(),
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
        description=(
            "Throttled to slow a guesser, not the owner: tries of one login from "
            "one address back off after a few (LOGIN_FREE_TRIES, then LOGIN_BACKOFF "
            "doubling), with looser limits per address and per login from anywhere. "
            "429 with `Retry-After`; a refused try checks no password. A right "
            "password clears the back-off of this login from this address."
        ),
        responses={200: AuthResponse},
        errors=(RestCode.INVALID_CREDENTIALS, ErrorCode.RATE_LIMITED),
    )
    async def login(body: LoginRequest) -> Response:
        ip = client_ip()
        await limits.before_login(body.login, ip)
        user = await store.get_user_by_login(body.login)
        # Accounts made by phone or Google have no password until they set one.
        if user is None or user.password_hash is None:
            await passwords.verify_dummy(body.password)
            raise InvalidCredentials()
        if not await passwords.verify(user.password_hash, body.password):
            raise InvalidCredentials()
        await limits.signed_in(body.login, ip)
        pair = await tokens.issue_pair(user, body.device)
        return json_response(_auth_response(user, pair))

    @router.route(
        "POST",
        "/auth/refresh",
        summary="Trade a refresh token for a new pair (the old one stops working)",
        description=(
            "Refresh tokens are single-use. Presenting one that was already used "
            "signs the whole device session out and answers `token_reused`: its "
            "refresh tokens are revoked, its current access token is refused and "
            "its open sockets close with 4104 `SESSION_REVOKED`. Limited per client "
            "address (REFRESH_PER_IP): 429 with `Retry-After`."
        ),
        tag="auth",
        auth=False,
        body=RefreshRequest,
        responses={200: TokenResponse},
        errors=(
            ErrorCode.UNAUTHORIZED,
            ErrorCode.TOKEN_EXPIRED,
            RestCode.TOKEN_REUSED,
            ErrorCode.RATE_LIMITED,
        ),
    )
    async def refresh(body: RefreshRequest) -> Response:
        await limits.before_refresh(client_ip())
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
            "Always 204, also for unknown tokens. The session's access tokens are "
            "refused from now on (also after a server restart) and its open sockets "
            "close with 4104 `SESSION_REVOKED`."
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
