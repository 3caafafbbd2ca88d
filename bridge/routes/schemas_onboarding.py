"""Request and response bodies of the onboarding API (issue 8), as msgspec Structs.

Same conventions as ``bridge.routes.schemas``: requests refuse unknown fields, limits
sit in ``Annotated`` metadata so OpenAPI shows them, times are milliseconds.
Usernames are checked in code (``bridge.accounts.onboarding.check_username``) rather
than by a pattern here, so that a look-alike letter from another alphabet
gets an answer that names it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from bridge.accounts.onboarding import Card, Me
from bridge.routes.schemas import Device, DisplayName, Email, Password, UserId

Privacy = Literal["everyone", "contacts", "nobody"]
PhoneText = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=40,
        description="E.164 (+33612345678), or national format with `region`.",
        examples=["+33612345678"],
    ),
]
Region = Annotated[
    str,
    msgspec.Meta(
        min_length=2,
        max_length=2,
        description="ISO 3166 country code used for a number given without +country.",
        examples=["FR"],
    ),
]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=12, description="The digits received.")]
UsernameText = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="3-32 of a-z A-Z 0-9 _ . ; unique regardless of case.",
        examples=["ada_l"],
    ),
]
Bio = Annotated[str, msgspec.Meta(max_length=280)]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    pass


# ----- phone sign-in ----------------------------------------------------------


class PhoneCodeRequest(_Request):
    phone: PhoneText
    region: Region | None = None


class CodeSent(msgspec.Struct, omit_defaults=True):
    expires_in: Annotated[int, msgspec.Meta(description="Seconds the code stays valid.")]
    phone: str | None = None  # the number as normalised (E.164)
    code: (
        Annotated[str, msgspec.Meta(description="Only when the server runs with OTP_DEV_ECHO.")]
        | None
    ) = None


class PhoneVerifyRequest(_Request):
    phone: PhoneText
    code: Code
    region: Region | None = None
    device: Device = "default"


class CompleteProfileRequest(_Request):
    display_name: DisplayName
    username: UsernameText
    email: Email | None = None


# ----- your profile -------------------------------------------------------------


class PrivacyOut(msgspec.Struct):
    last_seen: Privacy
    profile_photo: Privacy
    groups: Privacy


class MeOut(msgspec.Struct, kw_only=True):
    """Your own account, everything in it."""

    id: str
    username: str | None  # None until the profile is completed
    display_name: str
    phone: str | None
    email: str | None
    email_verified: bool
    bio: str
    avatar_url: str | None
    has_password: bool
    profile_complete: bool
    privacy: PrivacyOut
    created_at: int

    @classmethod
    def of(cls, me: Me) -> MeOut:
        profile = me.profile
        return cls(
            id=profile.id,
            username=profile.username,
            display_name=profile.display_name,
            phone=profile.phone,
            email=profile.email,
            email_verified=profile.email_verified_at is not None,
            bio=profile.bio,
            avatar_url=me.avatar_url,
            has_password=profile.has_password,
            profile_complete=profile.complete,
            privacy=PrivacyOut(
                last_seen=me.last_seen,  # type: ignore[arg-type]
                profile_photo=profile.photo_privacy,  # type: ignore[arg-type]
                groups=profile.groups_privacy,  # type: ignore[arg-type]
            ),
            created_at=profile.created_at,
        )


class OnboardingAuth(msgspec.Struct, kw_only=True):
    user: MeOut
    access_token: str
    refresh_token: str
    expires_in: Annotated[int, msgspec.Meta(description="Seconds the access token lives.")]
    created: Annotated[bool, msgspec.Meta(description="True when this sign-in made the account.")]
    profile_complete: Annotated[
        bool, msgspec.Meta(description="False until a username is chosen (complete-profile).")
    ]
    token_type: Literal["Bearer"] = "Bearer"


class UpdateProfileRequest(_Request):
    display_name: DisplayName | None = None
    username: UsernameText | None = None
    bio: Bio | None = None
    email: Email | None = None


class PrivacyRequest(_Request):
    last_seen: Privacy | None = None
    profile_photo: Privacy | None = None
    groups: Privacy | None = None


class PublicProfile(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Another user as you may see them: photo and presence follow their privacy."""

    id: str
    username: str | None
    display_name: str
    bio: str = ""
    avatar_url: str | None = None
    online: bool | None = None
    last_seen: int | None = None
    in_my_contacts: bool = False
    blocked_by_me: bool = False


# ----- passwords and email ------------------------------------------------------


class ChangePasswordRequest(_Request):
    new_password: Password
    current_password: (
        Annotated[
            str,
            msgspec.Meta(max_length=256, description="Required when the account has a password."),
        ]
        | None
    ) = None


class ForgotPasswordRequest(_Request):
    """Exactly one of ``email`` or ``phone``."""

    email: Email | None = None
    phone: PhoneText | None = None
    region: Region | None = None


class ResetPasswordRequest(_Request):
    code: Code
    new_password: Password
    email: Email | None = None
    phone: PhoneText | None = None
    region: Region | None = None


class CodeRequest(_Request):
    code: Code


# ----- Google sign-in -------------------------------------------------------------


class GoogleStartQuery(msgspec.Struct, frozen=True):
    device: Device = "web"


class GoogleStart(msgspec.Struct):
    authorization_url: str
    state: str
    expires_in: int


class GoogleCallbackQuery(msgspec.Struct, frozen=True):
    state: Annotated[str, msgspec.Meta(max_length=256)] = ""
    code: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    error: Annotated[str, msgspec.Meta(max_length=256)] = ""


class NonceRequest(_Request):
    device: Device = "mobile"


class NonceOut(msgspec.Struct):
    nonce: str
    expires_in: int


class IdTokenRequest(_Request):
    id_token: Annotated[str, msgspec.Meta(min_length=1, max_length=16384)]


# ----- contacts, blocks, discovery, search -----------------------------------------


class UserCardOut(msgspec.Struct):
    id: str
    username: str | None
    display_name: str
    avatar_url: str | None

    @classmethod
    def of(cls, card: Card) -> UserCardOut:
        return cls(card.id, card.username, card.display_name, card.avatar_url)


class AddContactRequest(_Request):
    user_id: UserId
    name: Annotated[str, msgspec.Meta(max_length=64)] = ""


class ContactOut(msgspec.Struct):
    user: UserCardOut
    name: str  # what you call them; "" = their own display name
    added_at: int


class ContactList(msgspec.Struct):
    contacts: list[ContactOut]
    has_more: bool


class ContactEnvelope(msgspec.Struct):
    contact: ContactOut


class BlockRequest(_Request):
    user_id: UserId


class UserList(msgspec.Struct):
    users: list[UserCardOut]
    has_more: bool


class DiscoverRequest(_Request):
    hashes: Annotated[
        list[Sha256Hex],
        msgspec.Meta(
            min_length=1,
            description="SHA-256 (lowercase hex) of each number's E.164 text.",
        ),
    ]


class Match(msgspec.Struct):
    hash: str
    user: UserCardOut


class DiscoverResponse(msgspec.Struct):
    matches: list[Match]


class PageQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    offset: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0


class SearchQuery(msgspec.Struct, frozen=True):
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 20
    offset: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0


# ----- sessions ---------------------------------------------------------------------


class SessionOut(msgspec.Struct):
    id: str
    device: str
    signed_in_at: int
    last_active_at: int
    expires_at: int
    current: bool


class SessionList(msgspec.Struct):
    sessions: list[SessionOut]
