"""Push tokens of this device and the push privacy setting (issue 15, part 3).

- A token is registered for the device session of the access token (``sid``):
  signing that session out (``/auth/logout``, ``DELETE /me/sessions/...``, a
  reused refresh token) removes it, so a signed-out phone gets no pushes.
- Only the caller's own token can be removed; someone else's answers 404
  like an unknown one.
- ``show_preview`` off: pushes say who wrote, never what.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from quart import Response

from bridge.accounts.tokens import AccessClaims
from bridge.errors import BadRequest, NotFound
from bridge.http.routing import Router, empty_response, json_response
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.push_tokens import PushToken, push_token_store

# FCM registration tokens: URL-safe base64 with ':'; APNs device tokens: hex.
_FCM_TOKEN = r"^[A-Za-z0-9:_\-]{16,4096}$"
_APNS_TOKEN = r"^[0-9a-fA-F]{64,200}$"
_APP_ID = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,154}$"


class PushTokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=16, max_length=4096)]
    provider: Literal["fcm", "apns"]
    app_id: Annotated[
        str,
        msgspec.Meta(
            pattern=_APP_ID,
            description="The Android package name (FCM) or the iOS bundle id (APNs topic).",
        ),
    ]


class PushSettings(msgspec.Struct, forbid_unknown_fields=True):
    show_preview: Annotated[
        bool, msgspec.Meta(description="false: pushes never carry message text.")
    ] = True


def _check_token(body: PushTokenRequest) -> None:
    pattern = _FCM_TOKEN if body.provider == "fcm" else _APNS_TOKEN
    if re.fullmatch(pattern, body.token) is None:
        what = "an FCM registration token" if body.provider == "fcm" else "a hex APNs token"
        raise BadRequest(f"token is not {what}.")


def add_routes(router: Router, services: BridgeServices) -> None:
    push = push_token_store(services.store)

    @router.route(
        "PUT",
        "/me/push-token",
        summary="Register this device's push token (FCM or APNs)",
        description=(
            "Kept for this device session until it signs out or the provider "
            "reports the token dead. The same token registered again, by this "
            "or another account, moves to the caller's session. Pushes go out "
            "only while none of your sessions is online."
        ),
        tag="push",
        body=PushTokenRequest,
        responses={204: None},
        errors=(ErrorCode.INVALID,),
    )
    async def register_push_token(claims: AccessClaims, body: PushTokenRequest) -> Response:
        _check_token(body)
        await push.register(
            PushToken(
                body.token,
                claims.user_id,
                claims.session_id,
                body.provider,
                body.app_id,
                services.clock(),
            )
        )
        return empty_response()

    @router.route(
        "DELETE",
        "/me/push-token/<token>",
        summary="Stop pushes to this token",
        tag="push",
        responses={204: None},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def unregister_push_token(claims: AccessClaims, token: str) -> Response:
        if not await push.unregister(claims.user_id, token):
            raise NotFound("You have no such push token.")
        return empty_response()

    @router.route(
        "GET",
        "/me/push-settings",
        summary="Your push privacy setting",
        tag="push",
        responses={200: PushSettings},
    )
    async def get_push_settings(claims: AccessClaims) -> Response:
        return json_response(PushSettings(await push.show_preview(claims.user_id)))

    @router.route(
        "PUT",
        "/me/push-settings",
        summary="Show or hide message text in pushes",
        tag="push",
        body=PushSettings,
        responses={200: PushSettings},
        errors=(ErrorCode.INVALID,),
    )
    async def put_push_settings(claims: AccessClaims, body: PushSettings) -> Response:
        await push.set_show_preview(claims.user_id, body.show_preview, services.clock())
        return json_response(body)
