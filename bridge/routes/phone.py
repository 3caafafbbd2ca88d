"""Phone sign-in: ask for a code, answer it, and (first time) complete the profile.

The first right code for a number creates its account (no username, email or
password yet) and answers 201; later ones sign in (200). Until
``/me/complete-profile`` gives a display name and a username, the account
works but nobody can find it.

Every code request and try passes the velocity limits first
(``bridge.accounts.ratelimit``): a refused one sends nothing and changes nothing.
"""

from __future__ import annotations

from quart import Response

from bridge.accounts.onboarding import Onboarding, check_username
from bridge.accounts.otp import Purpose
from bridge.accounts.phones import normalise, phone_hash
from bridge.accounts.tokens import AccessClaims, TokenPair
from bridge.errors import BridgeError, RestCode
from bridge.http.client_address import client_ip
from bridge.http.routing import Router, json_response
from bridge.routes.schemas_onboarding import (
    CodeSent,
    CompleteProfileRequest,
    MeOut,
    OnboardingAuth,
    PhoneCodeRequest,
    PhoneVerifyRequest,
)
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.base import new_id
from storage.errors import Conflict
from storage.onboarding import Profile

CODE_ERRORS = (
    RestCode.CODE_INVALID,
    RestCode.CODE_EXPIRED,
    ErrorCode.RATE_LIMITED,
)


async def auth_response(
    onboarding: Onboarding, profile: Profile, pair: TokenPair, *, created: bool
) -> Response:
    body = OnboardingAuth(
        user=MeOut.of(await onboarding.me(profile)),
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        created=created,
        profile_complete=profile.complete,
    )
    return json_response(body, status=201 if created else 200)


def add_routes(router: Router, services: BridgeServices) -> None:
    onboarding = Onboarding.of(services)
    accounts = onboarding.accounts

    @router.route(
        "POST",
        "/auth/phone/code",
        summary="Text a sign-in code to a phone number",
        description=(
            "The number is normalised to E.164 (send `region` for national formats). "
            "Asking again replaces the previous code. Limited per number (with a "
            "growing wait between codes), per IP and per country: 429 with "
            "`Retry-After`, and nothing is sent."
        ),
        tag="auth",
        auth=False,
        body=PhoneCodeRequest,
        responses={202: CodeSent},
        errors=(
            RestCode.INVALID_PHONE,
            ErrorCode.RATE_LIMITED,
            RestCode.DELIVERY_FAILED,
            RestCode.NOT_CONFIGURED,
        ),
    )
    async def phone_code(body: PhoneCodeRequest) -> Response:
        phone = normalise(body.phone, body.region)
        issued = await onboarding.otp.send_sms_code(
            Purpose.SIGNIN, phone.e164, client_ip(), phone.country_code
        )
        return json_response(CodeSent(issued.expires_in, phone.e164, issued.code), status=202)

    @router.route(
        "POST",
        "/auth/phone/verify",
        summary="Sign in (or up) with the code texted to a number",
        description=(
            "201 with `created: true` when this made the account, 200 otherwise. "
            "A code works once and dies after a few wrong tries."
        ),
        tag="auth",
        auth=False,
        body=PhoneVerifyRequest,
        responses={200: OnboardingAuth, 201: OnboardingAuth},
        errors=(RestCode.INVALID_PHONE, *CODE_ERRORS),
    )
    async def phone_verify(body: PhoneVerifyRequest) -> Response:
        phone = normalise(body.phone, body.region)
        await onboarding.otp.verify(Purpose.SIGNIN, phone.e164, body.code, client_ip())
        profile = await accounts.profile_by_phone(phone.e164)
        created = False
        if profile is None:
            try:
                profile = await accounts.create_phone_user(
                    new_id("u_"), phone.e164, phone_hash(phone.e164), onboarding.now_ms()
                )
                created = True
            except Conflict:
                # The same number signed up an instant ago on another request.
                profile = await accounts.profile_by_phone(phone.e164)
                if profile is None:
                    raise
        pair = await onboarding.sign_in(profile.id, body.device)
        return await auth_response(onboarding, profile, pair, created=created)

    @router.route(
        "POST",
        "/me/complete-profile",
        summary="Choose the display name and username of a new account",
        description=(
            "Once, for accounts made by phone or Google sign-in; change them later "
            "with PATCH /me/profile. The optional email is stored unverified."
        ),
        tag="users",
        body=CompleteProfileRequest,
        responses={200: MeOut},
        errors=(ErrorCode.CONFLICT,),
    )
    async def complete_profile(claims: AccessClaims, body: CompleteProfileRequest) -> Response:
        username = check_username(body.username)
        profile = await accounts.complete_profile(
            claims.user_id, display_name=body.display_name, username=username, email=body.email
        )
        if profile is None:
            await onboarding.profile(claims.user_id)  # 401 if the account is gone
            raise BridgeError(
                "The profile is already complete; change it with PATCH /me/profile.",
                code=ErrorCode.CONFLICT,
            )
        return json_response(MeOut.of(await onboarding.me(profile)))
