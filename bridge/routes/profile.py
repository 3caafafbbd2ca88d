"""Your profile (name, username, bio, email, avatar, privacy) and how others see it.

Privacy settings, each ``everyone`` | ``contacts`` | ``nobody``:
- ``profile_photo``: who sees your avatar (``contacts`` = people in YOUR
  contacts). Hidden photos are simply absent (``avatar_url`` null, and the
  image URL answers 404 like a missing one).
- ``last_seen``: who sees your online state and last seen; this is
  presence's own setting (``/me/presence``), the same value in both places.
- ``groups``: who may add you to a group.
A block, either way, hides photo, bio and presence between the two people.

Avatars are uploaded as the raw request body (any of JPEG, PNG, WebP, GIF;
``Content-Type`` is not trusted) up to AVATAR_MAX_BYTES, and stored as our
own square JPEG (``bridge.files.avatars``).
"""

from __future__ import annotations

from quart import Response, request
from quart_trio.wrappers import TrioRequest

from bridge.accounts.onboarding import Onboarding, check_username, photo_visible
from bridge.accounts.tokens import AccessClaims
from bridge.errors import BadRequest, NotFound, RestCode
from bridge.files.avatars import process_avatar
from bridge.http.routing import Body, Router, empty_response, json_response
from bridge.routes.schemas_onboarding import (
    MeOut,
    PrivacyOut,
    PrivacyRequest,
    PublicProfile,
    UpdateProfileRequest,
)
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.onboarding import Avatar, ProfileChanges

AVATAR_PATH = "/me/avatar"
_NO_SUCH_USER = "No such user."
_NO_AVATAR = "This user has no avatar you may see."


def allow_large_avatar_bodies(router: Router, limit: int) -> None:
    """Raise the body limit of ``PUT /me/avatar`` only, keeping the app's request class.

    Quart fixes a request's body limit when the request object is built, so
    the limit is chosen in the request class; subclassing whatever class is in
    place (media uploads install one too) keeps both routes' limits.
    """
    base: type[TrioRequest] = router.app.request_class

    class AvatarLimitRequest(base):  # type: ignore[valid-type, misc]
        def __init__(self, method: str, scheme: str, path: str, *args: object, **kwargs: object):
            ours = method == "PUT" and path == AVATAR_PATH
            if ours:
                kwargs["max_content_length"] = limit
            super().__init__(method, scheme, path, *args, **kwargs)
            if ours:
                self.max_content_length = limit

    router.app.request_class = AvatarLimitRequest


def add_routes(router: Router, services: BridgeServices) -> None:
    onboarding = Onboarding.of(services)
    accounts, social = onboarding.accounts, onboarding.social
    settings = services.settings
    allow_large_avatar_bodies(router, settings.avatar_max_bytes)

    @router.route(
        "GET", "/me/profile", summary="Your whole profile", tag="users", responses={200: MeOut}
    )
    async def get_profile(claims: AccessClaims) -> Response:
        return json_response(
            MeOut.of(await onboarding.me(await onboarding.profile(claims.user_id)))
        )

    @router.route(
        "PATCH",
        "/me/profile",
        summary="Change your display name, username, bio or email",
        description=(
            "A new email is unverified until proven (POST /me/email/verify), and "
            "an unverified email is no claim: whoever else next signs up with it, "
            "sets it, or signs in with Google on it takes it from you. Taking one "
            "another account holds unverified is allowed; a verified one is 409."
        ),
        tag="users",
        body=UpdateProfileRequest,
        responses={200: MeOut},
        errors=(ErrorCode.CONFLICT,),
    )
    async def update_profile(claims: AccessClaims, body: UpdateProfileRequest) -> Response:
        if body.username is not None:
            check_username(body.username)
        if body.bio is not None and "\x00" in body.bio:
            raise BadRequest("The bio must not contain NUL.", field="bio")
        changes = ProfileChanges(
            display_name=body.display_name, username=body.username, bio=body.bio, email=body.email
        )
        profile = await accounts.update_profile(claims.user_id, changes)
        if profile is None:
            await onboarding.profile(claims.user_id)  # 401: the account is gone
        assert profile is not None
        return json_response(MeOut.of(await onboarding.me(profile)))

    @router.route(
        "PUT",
        "/me/privacy",
        summary="Choose who sees your photo and last seen, and who may add you to groups",
        description=(
            "`last_seen` is your presence setting, the same one as `PUT /me/presence`"
            " (`visibility`): it decides who sees both your last seen and whether you are"
            " online. They are one setting on purpose: whoever sees you go offline learns"
            " your last seen, so hiding one but not the other would hide nothing."
        ),
        tag="users",
        body=PrivacyRequest,
        responses={200: PrivacyOut},
    )
    async def set_privacy(claims: AccessClaims, body: PrivacyRequest) -> Response:
        await onboarding.profile(claims.user_id)
        changes = ProfileChanges(photo_privacy=body.profile_photo, groups_privacy=body.groups)
        profile = await accounts.update_profile(claims.user_id, changes)
        if body.last_seen is not None:
            await onboarding.presence_settings.set_visibility(claims.user_id, body.last_seen)
        assert profile is not None
        return json_response(MeOut.of(await onboarding.me(profile)).privacy)

    @router.route(
        "PUT",
        AVATAR_PATH,
        summary="Upload your avatar (the raw image as the request body)",
        description=(
            "JPEG, PNG, WebP or GIF, judged by content. Stored as a square JPEG of "
            "at most AVATAR_SIZE pixels a side, without the original's metadata."
        ),
        tag="users",
        upload=Body(
            "image/*",
            {"type": "string", "format": "binary"},
            "The image's bytes as the whole body (not multipart); at most AVATAR_MAX_BYTES.",
        ),
        responses={200: MeOut},
        errors=(
            RestCode.PAYLOAD_TOO_LARGE,
            RestCode.UNSUPPORTED_MEDIA_TYPE,
            RestCode.IMAGE_INVALID,
        ),
    )
    async def put_avatar(claims: AccessClaims) -> Response:
        data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        if len(data) > settings.avatar_max_bytes:
            raise BadRequest(code=RestCode.PAYLOAD_TOO_LARGE, field="image")
        image = await process_avatar(
            data, size=settings.avatar_size, max_pixels=settings.avatar_max_pixels
        )
        avatar = Avatar(image.etag, image.content_type, image.data, onboarding.now_ms())
        if not await accounts.set_avatar(claims.user_id, avatar):
            await onboarding.profile(claims.user_id)  # 401: the account is gone
        return json_response(
            MeOut.of(await onboarding.me(await onboarding.profile(claims.user_id)))
        )

    @router.route(
        "DELETE", AVATAR_PATH, summary="Remove your avatar", tag="users", responses={204: None}
    )
    async def delete_avatar(claims: AccessClaims) -> Response:
        await accounts.delete_avatar(claims.user_id)
        return empty_response()

    async def visibility(viewer: str, user_id: str) -> tuple[bool, bool, bool, bool]:
        """(blocked_by_me, blocked_me, in_my_contacts, they_know_me)."""
        if viewer == user_id:
            return False, False, True, True
        return (
            await social.is_blocked(viewer, user_id),
            await social.is_blocked(user_id, viewer),
            await social.is_contact(viewer, user_id),
            await social.is_contact(user_id, viewer),
        )

    @router.route(
        "GET",
        "/users/<user_id>/profile",
        summary="A user's public profile, as their privacy settings let you see it",
        tag="users",
        responses={200: PublicProfile},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def public_profile(claims: AccessClaims, user_id: str) -> Response:
        viewer = claims.user_id
        profile = await accounts.get_profile(user_id)
        if profile is None:
            raise NotFound(_NO_SUCH_USER)
        blocked_by_me, blocked_me, in_my_contacts, knows_me = await visibility(viewer, user_id)
        blocked = blocked_by_me or blocked_me
        show_photo = photo_visible(
            profile.photo_privacy,
            own=viewer == user_id,
            owner_knows_viewer=knows_me,
            blocked=blocked,
        )
        online: bool | None = None
        last_seen: int | None = None
        tracker = services.presence
        if not blocked and tracker is not None:
            # Presence applies the "last seen" setting itself; absent = hidden.
            for state in await tracker.lookup(viewer, [user_id]):
                online, last_seen = state.online, state.last_seen
        return json_response(
            PublicProfile(
                id=profile.id,
                username=profile.username,
                display_name=profile.display_name,
                bio="" if blocked else profile.bio,
                avatar_url=onboarding.avatar_url(profile.id, profile.avatar_etag)
                if show_photo
                else None,
                online=online,
                last_seen=last_seen,
                in_my_contacts=in_my_contacts and viewer != user_id,
                blocked_by_me=blocked_by_me,
            )
        )

    @router.route(
        "GET",
        "/users/<user_id>/avatar",
        summary="A user's avatar image (image/jpeg), if their privacy lets you see it",
        description="Answers 404 alike for no avatar and for one hidden from you.",
        tag="users",
        responses={
            200: Body("image/jpeg", {"type": "string", "format": "binary"}, "The avatar."),
            304: None,
        },
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def get_avatar(claims: AccessClaims, user_id: str) -> Response:
        viewer = claims.user_id
        profile = await accounts.get_profile(user_id)
        if profile is None or profile.avatar_etag is None:
            raise NotFound(_NO_AVATAR)
        blocked_by_me, blocked_me, _, knows_me = await visibility(viewer, user_id)
        if not photo_visible(
            profile.photo_privacy,
            own=viewer == user_id,
            owner_knows_viewer=knows_me,
            blocked=blocked_by_me or blocked_me,
        ):
            raise NotFound(_NO_AVATAR)
        etag = f'"{profile.avatar_etag}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
        if request.headers.get("If-None-Match") == etag:
            return Response(b"", status=304, headers=headers)
        avatar = await accounts.get_avatar(user_id)
        if avatar is None:
            raise NotFound(_NO_AVATAR)
        return Response(avatar.data, status=200, content_type=avatar.content_type, headers=headers)
