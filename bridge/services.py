"""What the REST app is built from; the node wires one of these in realtime_server.

What the routes need of the node's own services (presence, typing, the
room-member cache, live statistics, the story sweeper) is declared here as
Protocols: the bridge imports nothing of the node (ARCHITECTURE.md), and the
node's classes fit them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from actors.runtime import ActorSystem
from bridge.accounts.passwords import PasswordHasher
from bridge.accounts.tokens import TokenService
from protocol.frames_notify import AdminStatsData
from protocol.frames_presence import PresenceState
from realtime_server.base.settings import Settings
from storage.base import Store, now_ms
from storage.blobs import BlobStore

if TYPE_CHECKING:  # these import the services bundle: types only from here
    from actors.ai_service import AiService
    from actors.call_registry import CallRegistry
    from bridge.accounts.onboarding import Onboarding
    from bridge.billing.service import Billing
    from bridge.notifications.notifier import Notifier


class Presence(Protocol):
    """Who is online, as ``viewer`` may see it (realtime_server.presence.PresenceTracker)."""

    async def lookup(self, viewer: str, user_ids: list[str]) -> list[PresenceState]: ...


class MembersCache(Protocol):
    """Room members as typing sees them (realtime_server.presence.RoomMembers)."""

    def invalidate(self, room_id: str) -> None: ...
    async def members(self, room_id: str) -> frozenset[str]: ...


class Typing(Protocol):
    """realtime_server.handlers_typing.TypingTracker: stops typing to removed members."""

    def members_changed(self, room: str) -> None: ...


class LiveStatistics(Protocol):
    """The node's figures for admins (realtime_server.admin_stats.LiveStats)."""

    def snapshot(self) -> AdminStatsData: ...


class Expiries(Protocol):
    """A sweeper told of a new expiry (realtime_server.story_expiry.StorySweeper)."""

    def scheduled(self, at_ms: int) -> None: ...


@dataclass
class BridgeServices:
    settings: Settings
    store: Store
    tokens: TokenService
    passwords: PasswordHasher
    # The realtime side, when the bridge runs inside a node (None in REST-only
    # tests): group changes tell room actors and refresh the typing cache.
    system: ActorSystem | None = None
    presence: Presence | None = None
    typing: Typing | None = None
    members: MembersCache | None = None
    # Where uploads go; None means LocalBlobStore under DATA_DIR/media.
    blobs: BlobStore | None = None
    ai: AiService | None = None  # AI conversations (issue 4)
    billing: Billing | None = None  # plans, payments, quota (issue 6)
    # Onboarding (issue 8): built from settings on first use when None; and
    # how a signed-out session's sockets get closed at once:
    # revoke_sockets(user_id, session_ids), set by the node.
    onboarding: Onboarding | None = None
    # Calls (issue 12): so that a removed member or a block reaches the
    # running calls at once.
    calls: CallRegistry | None = None
    revoke_sockets: Callable[[str, Sequence[str]], None] | None = None
    # Chat list (issue 18): the node's one clock (ms since the epoch; tests
    # replace it to move time), and how a frame reaches all of a user's
    # online devices: push_to_user(user_id, encoded_frame). None without a node.
    clock: Callable[[], int] = now_ms
    push_to_user: Callable[[str, bytes], None] | None = None
    # Notifications (issue 15): the notifier (stores and pushes; built
    # without live pushes when None) and the node's live stats (None without
    # a node).
    notifier: Notifier | None = None
    stats: LiveStatistics | None = None
    # Stories (issue 15): the sweeper, told of new expiries (None without a
    # node: expired stories stay hidden only).
    stories: Expiries | None = None
    # Several nodes (issue 13): room_changed(room_id, blocks) tells every node
    # that a room's members (or a direct pair's blocks) changed, or that a room
    # was created, so their bus subscriptions follow. None on a single node.
    room_changed: Callable[[str, bool], None] | None = None

    @classmethod
    def build(cls, settings: Settings, store: Store) -> BridgeServices:
        """The usual wiring: token and password services configured from ``settings``.

        ``settings.jwt_secret`` must be resolved already
        (``realtime_server.base.settings.resolve_jwt_secret``).
        """
        return cls(
            settings=settings,
            store=store,
            tokens=TokenService(
                settings.jwt_secret, settings.access_token_ttl, settings.refresh_token_ttl, store
            ),
            passwords=PasswordHasher(settings.argon2_time_cost, settings.argon2_memory_kib),
        )
