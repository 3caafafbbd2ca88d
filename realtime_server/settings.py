"""Settings read from the environment (and an optional ``.env`` file).

Every field is documented in README.md's settings table; keep the two in step
(tests/test_settings.py checks that every name here appears there).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "sqlite:///data/realtime.db"
    data_dir: str = "data"
    jwt_secret: str = ""
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    max_frame_bytes: int = 64 * 1024
    max_message_chars: int = 4000
    max_request_bytes: int = 1024 * 1024
    outbound_queue_bytes: int = 4 * 1024 * 1024
    heartbeat_interval: float = 20.0
    heartbeat_timeout: float = 10.0
    hello_timeout: float = 10.0
    actor_idle_seconds: float = 300.0
    actor_inbox_size: int = 1024
    ask_timeout: float = 10.0
    room_cache_size: int = 500
    resume_max_messages: int = 5000
    rate_limit_frames_per_second: float = 100.0
    rate_limit_burst: int = 500
    sqlite_synchronous: str = "FULL"
    log_level: str = "INFO"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://"))

    @property
    def sqlite_path(self) -> str:
        if self.is_postgres:
            raise SettingsError("sqlite_path asked of a PostgreSQL DATABASE_URL")
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            raise SettingsError(
                "DATABASE_URL must start with sqlite:/// or postgresql://, "
                f"got {self.database_url!r}"
            )
        return self.database_url[len(prefix) :]

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def env_name(field_name: str) -> str:
    return field_name.upper()


def load_settings(env: dict[str, str] | None = None, dotenv: str | None = ".env") -> Settings:
    """Build settings from ``env`` (default: the process environment).

    A ``.env`` file fills in names the environment does not set. An empty
    JWT_SECRET means "generate one and keep it in DATA_DIR", so a zero-set-up
    install issues tokens that survive a restart.
    """
    source: dict[str, str] = {}
    if dotenv and Path(dotenv).is_file():
        from dotenv import dotenv_values

        source.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    source.update(os.environ if env is None else env)

    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = source.get(env_name(f.name))
        if raw is None:
            continue
        default = f.default
        try:
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in {"1", "true", "yes", "on"}
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        except ValueError as exc:
            raise SettingsError(
                f"{env_name(f.name)}={raw!r} is not a valid {type(default).__name__}"
            ) from exc
    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise SettingsError("SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
    for name in (
        "max_frame_bytes",
        "max_message_chars",
        "outbound_queue_bytes",
        "actor_inbox_size",
    ):
        if getattr(s, name) <= 0:
            raise SettingsError(f"{env_name(name)} must be positive")
    if not s.is_postgres:
        s.sqlite_path  # noqa: B018 - raises on a malformed URL


def resolve_jwt_secret(s: Settings) -> Settings:
    """Return settings with a usable JWT secret, creating DATA_DIR/jwt.secret once."""
    if s.jwt_secret:
        return s
    path = Path(s.data_dir) / "jwt.secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return s.replace(jwt_secret=path.read_text().strip())
