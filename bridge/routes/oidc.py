"""Google sign-in: the browser's authorization-code flow, or a mobile app's ID token.

Browser: ``GET /auth/google/start`` answers the provider URL (PKCE S256,
``state``, ``nonce``) and sets an HttpOnly cookie bound to that state; the
provider sends the browser back to GOOGLE_REDIRECT_URI with ``code`` and
``state``, and the page there calls ``GET /auth/google/callback`` with them
(the cookie rides along). The cookie makes a callback from another browser
fail: nobody can sign a victim into the attacker's account by luring them to
a callback URL (login CSRF).

Mobile: ``POST /auth/google/nonce``, give that nonce to Google Sign-In, send
the ID token to ``POST /auth/google/id-token``. Each nonce serves one token:
a replayed token finds its nonce spent.

Accounts: a Google identity (issuer's ``sub``) signs in to the account it is
linked to. A new one links to the account that has the same email, but
only when Google says the email is verified AND the account proved it too
(``email_verified``). An account that merely typed that address (unproven)
neither gets the link nor blocks the owner: Google's proof wins, a new
account is made with the address verified, and the other account loses it
(issue 12: otherwise whoever typed someone's address first would block their
Google sign-in). Otherwise a new account is made.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from quart import Response, request

from bridge.accounts.oidc import IdClaims, IdTokenInvalid
from bridge.accounts.onboarding import Onboarding
from bridge.accounts.sms import NotConfigured
from bridge.errors import BadRequest, RestCode
from bridge.http.client_address import client_ip
from bridge.http.routing import Router, json_response
from bridge.routes.phone import auth_response
from bridge.routes.schemas_onboarding import (
    GoogleCallbackQuery,
    GoogleStart,
    GoogleStartQuery,
    IdTokenRequest,
    NonceOut,
    NonceRequest,
    OnboardingAuth,
)
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.base import new_id
from storage.challenges import LimitRule, OidcState
from storage.errors import Conflict
from storage.onboarding import Profile

PROVIDER = "google"
COOKIE_PATH = "/auth/google"
STARTS_PER_MINUTE = 30
_STATE_REFUSED = "This sign-in was not started here, has expired or was already used."


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cookie_name(state: str) -> str:
    # One cookie per flow, so two tabs signing in at once do not clash.
    return "oidc_" + _sha(state)[:16]


def add_routes(router: Router, services: BridgeServices) -> None:
    onboarding = Onboarding.of(services)
    google = onboarding.google
    ttl = services.settings.oidc_state_ttl

    async def limit_starts() -> None:
        await onboarding.limits.admit(
            {f"oidc-start:ip:{client_ip()}": LimitRule(STARTS_PER_MINUTE, 60_000)}
        )

    def new_state(kind: str, secret: str, nonce: str, device: str, **extra: str) -> OidcState:
        now = onboarding.now_ms()
        return OidcState(
            state_hash=_sha(secret),
            kind=kind,
            provider=PROVIDER,
            nonce=nonce,
            code_verifier=extra.get("code_verifier", ""),
            binding_hash=extra.get("binding_hash", ""),
            device=device,
            created_at=now,
            expires_at=now + ttl * 1000,
        )

    async def take(secret: str, kind: str) -> OidcState | None:
        state = await onboarding.challenges.take_oidc_state(_sha(secret))
        if state is None or state.kind != kind or state.expires_at <= onboarding.now_ms():
            return None
        return state

    @router.route(
        "GET",
        "/auth/google/start",
        summary="Start Google sign-in in a browser: the URL to send the user to",
        tag="auth",
        auth=False,
        query=GoogleStartQuery,
        responses={200: GoogleStart},
        errors=(RestCode.NOT_CONFIGURED, RestCode.PROVIDER_UNAVAILABLE, ErrorCode.RATE_LIMITED),
    )
    async def google_start(query: GoogleStartQuery) -> Response:
        if not google.has_code_flow:
            raise NotConfigured(
                "Google sign-in needs GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET"
                " and GOOGLE_REDIRECT_URI."
            )
        await limit_starts()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier, binding = secrets.token_urlsafe(64), secrets.token_urlsafe(32)
        url = await google.authorization_url(state=state, nonce=nonce, code_verifier=verifier)
        await onboarding.challenges.put_oidc_state(
            new_state(
                "code",
                state,
                nonce,
                query.device,
                code_verifier=verifier,
                binding_hash=_sha(binding),
            )
        )
        response = json_response(GoogleStart(url, state, ttl))
        response.set_cookie(
            cookie_name(state),
            binding,
            max_age=ttl,
            path=COOKIE_PATH,
            httponly=True,
            secure=services.settings.google_redirect_uri.startswith("https:"),
            samesite="Lax",
        )
        return response

    @router.route(
        "GET",
        "/auth/google/callback",
        summary="Finish Google sign-in with the code and state the provider sent back",
        description="201 with `created: true` when this made the account, 200 otherwise.",
        tag="auth",
        auth=False,
        query=GoogleCallbackQuery,
        responses={200: OnboardingAuth, 201: OnboardingAuth},
        errors=(
            RestCode.OIDC_STATE_INVALID,
            RestCode.ID_TOKEN_INVALID,
            RestCode.PROVIDER_UNAVAILABLE,
            RestCode.NOT_CONFIGURED,
        ),
    )
    async def google_callback(query: GoogleCallbackQuery) -> Response:
        if not google.has_code_flow:
            raise NotConfigured("Google sign-in is not configured.")
        if not query.state:
            raise BadRequest(_STATE_REFUSED, code=RestCode.OIDC_STATE_INVALID, field="state")
        # Taken (deleted) before anything else: a state serves one attempt.
        state = await take(query.state, "code")
        binding = request.cookies.get(cookie_name(query.state), "")
        if state is None or not hmac.compare_digest(_sha(binding), state.binding_hash):
            raise BadRequest(_STATE_REFUSED, code=RestCode.OIDC_STATE_INVALID, field="state")
        if query.error or not query.code:
            raise BadRequest(
                f"Google did not sign you in ({query.error or 'no code'}).",
                code=RestCode.OIDC_STATE_INVALID,
                field="code",
            )
        id_token = await google.exchange_code(query.code, state.code_verifier)
        claims = await google.verify_id_token(id_token, nonce=state.nonce)
        response = await _sign_in(claims, state.device)
        response.delete_cookie(cookie_name(query.state), path=COOKIE_PATH)
        return response

    @router.route(
        "POST",
        "/auth/google/nonce",
        summary="A one-use nonce for a mobile app's Google Sign-In",
        tag="auth",
        auth=False,
        body=NonceRequest,
        responses={201: NonceOut},
        errors=(RestCode.NOT_CONFIGURED, ErrorCode.RATE_LIMITED),
    )
    async def google_nonce(body: NonceRequest) -> Response:
        if not google.accepts_id_tokens:
            raise NotConfigured(
                "Google sign-in needs GOOGLE_CLIENT_ID or GOOGLE_MOBILE_CLIENT_IDS."
            )
        await limit_starts()
        nonce = secrets.token_urlsafe(32)
        await onboarding.challenges.put_oidc_state(new_state("nonce", nonce, nonce, body.device))
        return json_response(NonceOut(nonce, ttl), status=201)

    @router.route(
        "POST",
        "/auth/google/id-token",
        summary="Sign in with a Google ID token obtained by a mobile app",
        description=(
            "The token must carry a nonce from POST /auth/google/nonce, unused. "
            "201 with `created: true` when this made the account, 200 otherwise."
        ),
        tag="auth",
        auth=False,
        body=IdTokenRequest,
        responses={200: OnboardingAuth, 201: OnboardingAuth},
        errors=(
            RestCode.ID_TOKEN_INVALID,
            RestCode.PROVIDER_UNAVAILABLE,
            RestCode.NOT_CONFIGURED,
        ),
    )
    async def google_id_token(body: IdTokenRequest) -> Response:
        if not google.accepts_id_tokens:
            raise NotConfigured("Google sign-in is not configured.")
        nonce = google.unverified_nonce(body.id_token)
        state = await take(nonce, "nonce") if nonce else None
        if state is None:
            raise IdTokenInvalid(
                "The ID token's nonce was not issued here, has expired or was already used."
            )
        claims = await google.verify_id_token(body.id_token, nonce=state.nonce)
        return await _sign_in(claims, state.device)

    async def _sign_in(claims: IdClaims, device: str) -> Response:
        profile, created = await _account_for(claims)
        pair = await onboarding.sign_in(profile.id, device)
        return await auth_response(onboarding, profile, pair, created=created)

    async def _account_for(claims: IdClaims) -> tuple[Profile, bool]:
        accounts = onboarding.accounts
        for _ in range(2):  # a second pass after losing a race to create the same account
            user_id = await accounts.identity_user(PROVIDER, claims.subject)
            if user_id is not None:
                return await onboarding.profile(user_id), False
            email = claims.email if claims.email_verified else None
            existing = await accounts.profile_by_email(email) if email else None
            if existing is not None and existing.email_verified_at is None:
                # Never proven there: that account loses the address to this one,
                # which Google proves (create_oidc_user takes it in its transaction).
                existing = None
            try:
                if existing is not None:
                    await accounts.link_identity(
                        PROVIDER, claims.subject, existing.id, email, onboarding.now_ms()
                    )
                    return existing, False
                created = await accounts.create_oidc_user(
                    new_id("u_"),
                    email=email,
                    display_name=claims.name,
                    provider=PROVIDER,
                    subject=claims.subject,
                    at=onboarding.now_ms(),
                )
                return created, True
            except Conflict:
                continue
        raise Conflict("identity")
