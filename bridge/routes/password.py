"""Passwords beyond sign-up: change, forget (code by email or SMS), reset; and
proving an account's email.

- Changing needs the current password (an account made by phone or Google
  has none and sets its first one without) and signs every OTHER device out:
  whoever else knew the old password is cut off, this device stays in.
- "Forgot" answers the same 202 whether or not an account has that email or
  number, spends the same rate limits, and only sends when one exists: the
  answer tells nobody who has an account.
- A reset signs out every device, and a reset by email also proves the email.
"""

from __future__ import annotations

from quart import Response

from bridge.accounts.onboarding import Onboarding
from bridge.accounts.otp import Purpose
from bridge.accounts.phones import normalise
from bridge.accounts.tokens import AccessClaims
from bridge.errors import BadRequest, RestCode
from bridge.http.client_address import client_ip
from bridge.http.routing import Router, empty_response, json_response
from bridge.routes.phone import CODE_ERRORS
from bridge.routes.schemas_onboarding import (
    ChangePasswordRequest,
    CodeRequest,
    CodeSent,
    ForgotPasswordRequest,
    MeOut,
    ResetPasswordRequest,
)
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.onboarding import Profile
from storage.sql.schema import fold


def _one_target(email: str | None, phone: str | None) -> None:
    if (email is None) == (phone is None):
        raise BadRequest("Give either 'email' or 'phone'.", field="email" if email else "phone")


def add_routes(router: Router, services: BridgeServices) -> None:
    onboarding = Onboarding.of(services)
    accounts, otp, passwords = onboarding.accounts, onboarding.otp, services.passwords

    @router.route(
        "POST",
        "/me/password",
        summary="Change your password; signs your other devices out",
        description=(
            "Tries of the current password are throttled like logins: 429 with "
            "`Retry-After` after a few wrong ones."
        ),
        tag="users",
        body=ChangePasswordRequest,
        responses={204: None},
        errors=(RestCode.WRONG_PASSWORD, ErrorCode.RATE_LIMITED),
    )
    async def change_password(claims: AccessClaims, body: ChangePasswordRequest) -> Response:
        profile = await onboarding.profile(claims.user_id)
        if profile.has_password:
            if body.current_password is None:
                raise BadRequest("Give your current password.", field="current_password")
            ip = client_ip()
            await onboarding.limits.before_password_check(claims.user_id, ip)
            user = await services.store.get_user(claims.user_id)
            stored = user.password_hash if user is not None else None
            if not stored or not await passwords.verify(stored, body.current_password):
                raise BadRequest(code=RestCode.WRONG_PASSWORD, field="current_password")
            await onboarding.limits.password_checked(claims.user_id, ip)
        await accounts.set_password_hash(claims.user_id, await passwords.hash(body.new_password))
        await onboarding.end_sessions(claims.user_id, keep=claims.session_id)
        return empty_response()

    @router.route(
        "POST",
        "/auth/password/forgot",
        summary="Send a password reset code to an account's email or phone",
        description=(
            "Always 202 for a well-formed request, whether or not an account "
            "matches: the answer never tells who has an account."
        ),
        tag="auth",
        auth=False,
        body=ForgotPasswordRequest,
        responses={202: CodeSent},
        errors=(
            RestCode.INVALID_PHONE,
            ErrorCode.RATE_LIMITED,
            RestCode.DELIVERY_FAILED,
            RestCode.NOT_CONFIGURED,
        ),
    )
    async def forgot_password(body: ForgotPasswordRequest) -> Response:
        _one_target(body.email, body.phone)
        ip = client_ip()
        if body.email is not None:
            owner = await accounts.profile_by_email(body.email)
            issued = await otp.send_email_code(
                Purpose.RESET, body.email, fold(body.email), ip, deliver=owner is not None
            )
        else:
            assert body.phone is not None
            phone = normalise(body.phone, body.region)
            owner = await accounts.profile_by_phone(phone.e164)
            issued = await otp.send_sms_code(
                Purpose.RESET, phone.e164, ip, phone.country_code, deliver=owner is not None
            )
        return json_response(CodeSent(issued.expires_in, code=issued.code), status=202)

    @router.route(
        "POST",
        "/auth/password/reset",
        summary="Set a new password with a reset code; signs every device out",
        tag="auth",
        auth=False,
        body=ResetPasswordRequest,
        responses={204: None},
        errors=(RestCode.INVALID_PHONE, *CODE_ERRORS),
    )
    async def reset_password(body: ResetPasswordRequest) -> Response:
        _one_target(body.email, body.phone)
        owner: Profile | None
        if body.email is not None:
            target = fold(body.email)
            await otp.verify(Purpose.RESET, target, body.code, client_ip())
            owner = await accounts.profile_by_email(body.email)
        else:
            assert body.phone is not None
            target = normalise(body.phone, body.region).e164
            await otp.verify(Purpose.RESET, target, body.code, client_ip())
            owner = await accounts.profile_by_phone(target)
        if owner is None:  # the account went away between code and reset
            raise BadRequest(code=RestCode.CODE_EXPIRED, field="code")
        await accounts.set_password_hash(owner.id, await passwords.hash(body.new_password))
        if body.email is not None:
            await accounts.mark_email_verified(owner.id, body.email, onboarding.now_ms())
        await onboarding.end_sessions(owner.id)
        return empty_response()

    @router.route(
        "POST",
        "/me/email/verify",
        summary="Email a code that proves you own your account's email",
        tag="users",
        responses={202: CodeSent},
        errors=(ErrorCode.RATE_LIMITED, RestCode.DELIVERY_FAILED, RestCode.NOT_CONFIGURED),
    )
    async def send_email_code(claims: AccessClaims) -> Response:
        profile = await onboarding.profile(claims.user_id)
        if profile.email is None:
            raise BadRequest("Your account has no email; add one with PATCH /me/profile.")
        issued = await otp.send_email_code(
            Purpose.VERIFY_EMAIL, profile.email, _email_target(profile), client_ip()
        )
        return json_response(CodeSent(issued.expires_in, code=issued.code), status=202)

    @router.route(
        "POST",
        "/me/email/verify/confirm",
        summary="Prove your email with the code sent to it",
        tag="users",
        body=CodeRequest,
        responses={200: MeOut},
        errors=CODE_ERRORS,
    )
    async def confirm_email(claims: AccessClaims, body: CodeRequest) -> Response:
        profile = await onboarding.profile(claims.user_id)
        if profile.email is None:
            raise BadRequest("Your account has no email; add one with PATCH /me/profile.")
        await otp.verify(Purpose.VERIFY_EMAIL, _email_target(profile), body.code, client_ip())
        await accounts.mark_email_verified(profile.id, profile.email, onboarding.now_ms())
        return json_response(
            MeOut.of(await onboarding.me(await onboarding.profile(claims.user_id)))
        )


def _email_target(profile: Profile) -> str:
    # Bound to the account too: a code for "my" address cannot verify it on
    # another account that typed the same address later.
    assert profile.email is not None
    return f"{profile.id}:{fold(profile.email)}"
