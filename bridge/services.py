"""What the REST app is built from; the node wires one of these in realtime_server."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.passwords import PasswordHasher
from bridge.tokens import TokenService
from realtime_server.settings import Settings
from storage.base import Store


@dataclass
class BridgeServices:
    settings: Settings
    store: Store
    tokens: TokenService
    passwords: PasswordHasher

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
