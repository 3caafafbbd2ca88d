"""What the onboarding routes share: the services they run on and the rules
that are the same everywhere (usernames, who may see a photo, signing a
device out everywhere at once).

``Onboarding.of(services)`` builds the bundle once per app from
``BridgeServices`` (tests may put their own, with a clock or senders, in
``services.onboarding`` first). Routes live in ``routes_phone``,
``routes_oidc``, ``routes_password``, ``routes_profile``, ``routes_contacts``
and ``routes_sessions``.

Signing a session out (remote sign-out, password change, password reset)
does three things, in this order: revokes its refresh tokens in storage (it
can never refresh again), has ``TokenService.sign_out`` record it durably and
refuse its access tokens from now on (REST and the socket's hello, also
after a restart), and closes its open sockets with 4104 ``SESSION_REVOKED``
through ``services.revoke_sockets``, which the node sets.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from bridge.accounts.mailer import EmailSender, build_mailer
from bridge.accounts.oidc import OidcConfig, OidcProvider
from bridge.accounts.otp import OtpService
from bridge.accounts.ratelimit import Limits
from bridge.accounts.sms import SmsSender, build_sms
from bridge.accounts.tokens import TokenPair
from bridge.errors import BadRequest, TokenInvalid
from bridge.services import BridgeServices
from realtime_server.base.settings import Settings
from storage.challenges import challenges_store
from storage.contacts import UserCard, contacts_store
from storage.onboarding import Profile, onboarding_store
from storage.presence import presence_store

USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
USERNAME_MIN, USERNAME_MAX = 3, 32
_GONE = "The account of this token no longer exists; sign in again."


def check_username(name: str) -> str:
    """``name`` if it is a valid username, else BadRequest naming the problem.

    Only ASCII letters, digits, ``_`` and ``.``: a Cyrillic "а" or a
    full-width "ａ" looks like a Latin "a" but is another character, and
    letting one in makes "аda" an impersonation of "ada" that no
    case-insensitive index would catch.
    """
    for char in name:
        if char not in USERNAME_CHARS:
            if char.isascii():
                why = f"{char!r} is not allowed"
            else:
                label = unicodedata.name(char, f"U+{ord(char):04X}")
                why = f"{char!r} ({label}) is not a Latin letter or digit, though it looks like one"
            raise BadRequest(
                f"Usernames use only a-z, A-Z, 0-9, '_' and '.'; {why}.", field="username"
            )
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        raise BadRequest(
            f"Usernames are {USERNAME_MIN} to {USERNAME_MAX} characters.", field="username"
        )
    return name


def photo_visible(
    privacy: str, *, own: bool, owner_knows_viewer: bool, blocked: bool = False
) -> bool:
    """Whether a viewer may see a user's photo. Pure: the rule in one place."""
    if own:
        return True
    if blocked or privacy == "nobody":
        return False
    return privacy == "everyone" or owner_knows_viewer


def build_google(settings: Settings, clock: Callable[[], float]) -> OidcProvider:
    mobile = [a.strip() for a in settings.google_mobile_client_ids.split(",") if a.strip()]
    audiences = tuple(a for a in [settings.google_client_id, *mobile] if a)
    config = OidcConfig(
        issuer=settings.google_issuer,
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret,
        redirect_uri=settings.google_redirect_uri,
        audiences=audiences,
        jwks_ttl=float(settings.oidc_jwks_ttl),
        timeout=settings.oidc_http_timeout,
    )
    return OidcProvider("google", config, clock=clock)


@dataclass(frozen=True, slots=True)
class Me:
    """The signed-in user's own account, as they see it (REST: ``MeOut``)."""

    profile: Profile
    last_seen: str  # their last-seen visibility: everyone | contacts | nobody
    avatar_url: str | None


@dataclass(frozen=True, slots=True)
class Card:
    """How one user appears to a viewer (REST: ``UserCardOut``)."""

    id: str
    username: str | None
    display_name: str
    avatar_url: str | None  # None when the photo is hidden from this viewer


class Onboarding:
    def __init__(
        self,
        services: BridgeServices,
        *,
        clock: Callable[[], float] = time.time,
        sms: SmsSender | None = None,
        mailer: EmailSender | None = None,
        google: OidcProvider | None = None,
    ) -> None:
        settings: Settings = services.settings
        store = services.store
        self.services = services
        self.settings = settings
        self.store = store
        self.tokens = services.tokens
        self.passwords = services.passwords
        self.clock = clock
        self.accounts = onboarding_store(store)
        self.social = contacts_store(store)
        self.challenges = challenges_store(store)
        self.presence_settings = presence_store(store)
        self.limits = Limits(store, settings, clock=clock)
        self.sms = sms if sms is not None else build_sms(settings)
        self.mailer = mailer if mailer is not None else build_mailer(settings)
        self.otp = OtpService(store, settings, self.limits, self.sms, self.mailer, clock=clock)
        self.google = google if google is not None else build_google(settings, clock)

    @classmethod
    def of(cls, services: BridgeServices) -> Onboarding:
        if services.onboarding is None:
            # On the node's clock (ms): OTP expiry and back-off, rate-limit windows.
            node_ms: Callable[[], int] = services.clock
            services.onboarding = cls(services, clock=lambda: node_ms() / 1000)
        found: Onboarding = services.onboarding
        return found

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ----- accounts --------------------------------------------------------------

    async def profile(self, user_id: str) -> Profile:
        """The caller's own profile; a token whose user is gone is no sign-in."""
        found = await self.accounts.get_profile(user_id)
        if found is None:
            raise TokenInvalid(_GONE)
        return found

    async def sign_in(self, user_id: str, device: str) -> TokenPair:
        pair: TokenPair = await self.tokens.sign_in(user_id, device)
        return pair

    async def me(self, profile: Profile) -> Me:
        visibility = await self.last_seen_privacy(profile.id)
        return Me(profile, visibility, self.avatar_url(profile.id, profile.avatar_etag))

    async def last_seen_privacy(self, user_id: str) -> str:
        found = await self.presence_settings.presence_settings([user_id])
        return found[user_id].visibility

    # ----- how others appear ---------------------------------------------------------

    @staticmethod
    def avatar_url(user_id: str, etag: str | None) -> str | None:
        # The etag in the URL lets clients cache an avatar forever: a new
        # photo is a new URL.
        return None if etag is None else f"/users/{user_id}/avatar?v={etag}"

    def card(self, card: UserCard, viewer_id: str, *, blocked: bool = False) -> Card:
        visible = photo_visible(
            card.photo_privacy,
            own=card.id == viewer_id,
            owner_knows_viewer=card.knows_viewer,
            blocked=blocked,
        )
        avatar_url = self.avatar_url(card.id, card.avatar_etag) if visible else None
        return Card(card.id, card.username, card.display_name, avatar_url)

    # ----- signing devices out ---------------------------------------------------------

    async def end_sessions(
        self, user_id: str, *, only: str | None = None, keep: str | None = None
    ) -> list[str]:
        ended = await self.accounts.revoke_sessions(user_id, self.now_ms(), only=only, keep=keep)
        # Durable, refused at once, sockets closed (TokenService.sign_out).
        await self.tokens.sign_out(user_id, ended)
        return ended

    # ----- blocks reach the direct room at once ----------------------------------------

    async def blocks_changed(self, a: str, b: str) -> None:
        """Tell the live direct room of ``a`` and ``b`` (if any) to reload its block state.

        A room not running loads it when it starts; telling only live rooms
        never spawns an actor for this.
        """
        system = self.services.system
        if system is None:
            return
        from actors.room import ROOM, BlocksChanged

        room_id = await self.social.direct_room_id(a, b)
        if room_id is not None and self.services.room_changed is not None:
            self.services.room_changed(room_id, True)
        if room_id is not None and system.is_live(ROOM, room_id):
            await system.ref(ROOM, room_id).tell(BlocksChanged())
        if self.services.calls is not None:  # a call between them is cut (issue 12)
            from actors.call import access_changed

            await access_changed(system, self.services.calls, [a, b])
