"""What the REST app is built from; the node wires one of these in realtime_server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from actors.runtime import ActorSystem
from bridge.passwords import PasswordHasher
from bridge.tokens import TokenService
from realtime_server.settings import Settings
from storage.base import Store
from storage.blobs import BlobStore


@dataclass
class BridgeServices:
    settings: Settings
    store: Store
    tokens: TokenService
    passwords: PasswordHasher
    # The realtime side, when the bridge runs inside a node (None in REST-only
    # tests): group changes tell room actors and refresh the typing cache.
    system: ActorSystem | None = None
    presence: Any = None  # realtime_server.presence.PresenceTracker
    typing: Any = None  # realtime_server.handlers_typing.TypingTracker
    members: Any = None  # realtime_server.presence.RoomMembers
    # Where uploads go; None means LocalBlobStore under DATA_DIR/media.
    blobs: BlobStore | None = None
    ai: Any = None  # actors.ai_service.AiService: AI conversations (issue 4)
    billing: Any = None  # bridge.billing_service.Billing: plans, payments, quota (issue 6)
    # Onboarding (issue 8): bridge.onboarding.Onboarding, built from settings on
    # first use when None; and how a signed-out session's sockets get closed
    # at once: revoke_sockets(user_id, session_ids), set by the node.
    onboarding: Any = None
    # Calls (issue 12): actors.call_registry.CallRegistry, so that a removed
    # member or a block reaches the running calls at once.
    calls: Any = None
    revoke_sockets: Callable[[str, Sequence[str]], None] | None = None

    @classmethod
    def build(cls, settings: Settings, store: Store) -> BridgeServices:
        """The usual wiring: token and password services configured from ``settings``.

        ``settings.jwt_secret`` must be resolved already
        (``realtime_server.settings.resolve_jwt_secret``).
        """
        return cls(
            settings=settings,
            store=store,
            tokens=TokenService(
                settings.jwt_secret, settings.access_token_ttl, settings.refresh_token_ttl, store
            ),
            passwords=PasswordHasher(settings.argon2_time_cost, settings.argon2_memory_kib),
        )
