"""Your presence setting: who may see whether you are online and when you were last seen.

``everyone``: users who share a room with you and your contacts;
``contacts``: your contacts only; ``nobody``: no one (you still see others).
The setting applies from the next presence change and to every
``presence.get`` from now on.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from quart import Response

from bridge.accounts.tokens import AccessClaims
from bridge.http.routing import Router, json_response
from bridge.services import BridgeServices
from storage.presence import presence_store

Visibility = Literal["everyone", "contacts", "nobody"]


class PresenceSettingRequest(msgspec.Struct, forbid_unknown_fields=True):
    visibility: Visibility


class PresenceSettingOut(msgspec.Struct):
    visibility: Visibility
    last_seen: int | None = None


def add_routes(router: Router, services: BridgeServices) -> None:
    presence = presence_store(services.store)

    @router.route(
        "GET",
        "/me/presence",
        summary="Your presence visibility setting",
        tag="users",
        responses={200: PresenceSettingOut},
    )
    async def get_presence_setting(claims: AccessClaims) -> Response:
        found = (await presence.presence_settings([claims.user_id]))[claims.user_id]
        return json_response(PresenceSettingOut(found.visibility, found.last_seen))  # type: ignore[arg-type]

    @router.route(
        "PUT",
        "/me/presence",
        summary="Choose who may see your presence: everyone, contacts or nobody",
        description=(
            "Presence is both whether you are online and your last seen: one setting,"
            " also readable and writable as `last_seen` in `PUT /me/privacy`."
        ),
        tag="users",
        body=PresenceSettingRequest,
        responses={200: PresenceSettingOut},
    )
    async def set_presence_setting(claims: AccessClaims, body: PresenceSettingRequest) -> Response:
        await presence.set_visibility(claims.user_id, body.visibility)
        found = (await presence.presence_settings([claims.user_id]))[claims.user_id]
        return json_response(PresenceSettingOut(found.visibility, found.last_seen))  # type: ignore[arg-type]
