"""The bus a node's settings ask for."""

from __future__ import annotations

from realtime_server.cluster.bus import Bus
from realtime_server.settings import Settings, SettingsError


def open_bus(settings: Settings) -> Bus:
    """The Redis bus of ``REDIS_URL`` (imported only then: a single node never loads it)."""
    raise SettingsError("REDIS_URL: the Redis bus is not built yet")
