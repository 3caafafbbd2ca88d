"""Settings read from the environment (and an optional ``.env`` file).

Every field is documented in README.md's settings table; keep the two in step
(tests/test_settings.py checks that every name here appears there).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names it."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """A comma list of addresses or CIDRs ("10.0.0.0/8, ::1") as networks.

    Raises ValueError naming the first entry that is neither.
    """
    found: list[Network] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR") from None
    return tuple(found)


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
    # ----- gateway and listener robustness (issue 12) -----
    close_timeout: float = 5.0  # a closing socket's wait for the peer to take the close frame
    shutdown_timeout: float = 10.0  # SIGTERM: time for in-flight requests and their answers
    http_head_timeout: float = 10.0  # a new connection's request head must arrive within this
    http_read_timeout: float = 30.0  # a request body may pause this long between bytes
    http_write_timeout: float = 30.0  # a response write the peer does not take in this time
    http_keep_alive_timeout: float = 75.0  # an idle keep-alive REST connection is closed after
    rest_max_connections: int = 0  # REST connections at once; 0: half the descriptor limit
    gc_collect_interval: float = 60.0  # serve: seconds between full GC passes (0: never)
    actor_idle_seconds: float = 300.0
    actor_inbox_size: int = 1024
    ask_timeout: float = 10.0
    room_cache_size: int = 500
    resume_max_messages: int = 5000
    rate_limit_frames_per_second: float = 100.0
    rate_limit_burst: int = 500
    # --- media, typing, presence (issue 3, items 5-8) ---
    max_upload_bytes: int = 10 * 1024 * 1024
    typing_ttl: float = 6.0
    typing_throttle: float = 2.0
    typing_max_per_minute: int = 60
    presence_grace: float = 5.0
    presence_throttle: float = 2.0
    members_cache_seconds: float = 60.0
    sqlite_synchronous: str = "FULL"
    log_level: str = "INFO"
    log_format: str = "text"  # text | json (one JSON object per line)
    # ----- calls: WebRTC signaling, ring/reconnect timers, ICE servers (issue 5) -----
    call_ring_seconds: float = 45.0
    call_reconnect_grace: float = 15.0
    call_max_participants: int = 8
    call_max_sdp_bytes: int = 32 * 1024
    call_max_ice_bytes: int = 1024
    call_stun_urls: str = ""  # comma list, e.g. "stun:stun.example.com:3478"
    call_turn_urls: str = ""  # comma list; handed out only with a secret
    call_turn_secret: str = ""  # TURN REST shared secret (coturn static-auth-secret)
    call_turn_ttl: int = 3600
    # ----- rich messaging (issue 3: receipts, reactions, edit/delete, search) -----
    message_delete_window_seconds: int = 48 * 3600
    search_max_results: int = 50
    # ----- billing: plans, Stripe, Konnect, AI-message quotas (issue 6) -----
    # Prices in TND millimes (1 TND = 1000); an AI daily cap of 0 means "none";
    # models are a comma list of AI model names, "*" for all.
    plan_free_price_millimes: int = 0
    plan_free_ai_monthly: int = 20
    plan_free_ai_daily: int = 0
    plan_free_models: str = "gpt-4o-mini"
    plan_basic_price_millimes: int = 30_000
    plan_basic_ai_monthly: int = 100
    plan_basic_ai_daily: int = 0
    plan_basic_models: str = "*"
    plan_basic_stripe_price: str = ""
    plan_premium_price_millimes: int = 60_000
    plan_premium_ai_monthly: int = 1000
    plan_premium_ai_daily: int = 0
    plan_premium_models: str = "*"
    plan_premium_stripe_price: str = ""
    billing_public_url: str = ""
    billing_return_url: str = ""
    billing_renewal_grace_seconds: int = 86_400
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = "https://api.stripe.com"
    stripe_timeout: float = 20.0
    stripe_max_retries: int = 2
    stripe_checkout_ttl: int = 3600
    konnect_api_key: str = ""
    konnect_wallet_id: str = ""
    konnect_api_base: str = "https://api.konnect.network/api/v2"
    konnect_timeout: float = 20.0
    konnect_period_seconds: int = 30 * 24 * 3600
    konnect_lifespan_minutes: int = 30
    # ----- AI conversations: providers, models, limits, timeouts (issue 4) -----
    # AI_PROVIDERS is JSON: {"name": {"base_url": ..., "api_key": ..., "models": [...]}}.
    ai_providers: str = ""
    ai_default_model: str = "offline"
    ai_offline_delay: float = 0.05
    ai_system_prompt: str = ""
    ai_context_tokens: int = 3000
    ai_context_messages: int = 50
    ai_max_prompt_chars: int = 8000
    ai_max_output_tokens: int = 1024
    ai_request_timeout: float = 30.0
    ai_max_retries: int = 0
    ai_first_token_timeout: float = 60.0
    ai_idle_timeout: float = 30.0
    ai_max_generations: int = 1000
    # ----- files in AI projects (issue 15, part 4) -----
    ai_file_max_bytes: int = 5 * 1024 * 1024
    ai_file_max_chars: int = 500_000
    ai_files_per_preset: int = 20
    ai_file_chunk_tokens: int = 250
    ai_files_context_tokens: int = 1500
    # ----- onboarding: phone codes, Google sign-in, avatars, contacts (issue 8) -----
    sms_provider: str = "console"  # console | twilio
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""  # sender number, or a Messaging Service SID (MG...)
    twilio_api_base: str = "https://api.twilio.com"
    email_provider: str = "console"  # console | sendgrid
    sendgrid_api_key: str = ""
    sendgrid_api_base: str = "https://api.sendgrid.com"
    email_from: str = ""
    delivery_timeout: float = 10.0
    otp_dev_echo: bool = False  # development only: codes come back in the response
    otp_length: int = 6
    otp_ttl: int = 300
    otp_max_attempts: int = 5
    otp_window: int = 3600  # seconds the OTP counters below count over
    otp_sends_per_target: int = 5
    otp_sends_per_ip: int = 20
    otp_sends_per_country: int = 1000
    otp_resend_backoff: float = 30.0  # after each code to a target; doubles each time
    otp_verifies_per_target: int = 10
    otp_verifies_per_ip: int = 50
    otp_verify_backoff: float = 1.0  # after two free tries; doubles each time
    google_client_id: str = ""
    google_client_secret: str = ""
    google_redirect_uri: str = ""
    google_issuer: str = "https://accounts.google.com"
    google_mobile_client_ids: str = ""  # comma list: audiences of Android/iOS ID tokens
    oidc_state_ttl: int = 600
    oidc_jwks_ttl: int = 3600
    oidc_http_timeout: float = 10.0
    avatar_max_bytes: int = 5 * 1024 * 1024
    avatar_size: int = 512
    avatar_max_pixels: int = 40_000_000
    discover_max_hashes: int = 1000
    discover_per_day: int = 5000
    user_search_per_minute: int = 60
    # ----- sign-in throttling and client addresses (issue 12) -----
    # Login: one account from one address backs off fast; one account from
    # anywhere has a looser, short limit (what an attacker can impose on the
    # owner); one address over every account catches credential stuffing.
    login_window: int = 900  # seconds the LOGIN_* limits below count over
    login_free_tries: int = 5  # tries of one account from one address before back-off
    login_backoff: float = 1.0  # then seconds between tries; doubles each time
    login_per_account_ip: int = 20  # tries of one account from one address per window
    login_per_ip: int = 100  # tries from one address, any account, per window
    login_per_account: int = 50  # one login from anywhere but its known addresses, per window
    login_account_window: int = 300
    register_per_ip: int = 10  # sign-ups from one address per REGISTER_WINDOW
    register_window: int = 3600
    refresh_per_ip: int = 600  # token refreshes from one address per REFRESH_WINDOW
    refresh_window: int = 300
    # Comma list of proxy addresses or CIDRs (e.g. "10.0.0.0/8, 127.0.0.1").
    # Only a request whose direct peer is listed has its client address read
    # from PROXY_HEADER: "x-forwarded-for" or "forwarded" (RFC 7239).
    trusted_proxies: str = ""
    proxy_header: str = "x-forwarded-for"
    # ----- web clients: CORS and the /ws Origin check (issue 16) -----
    cors_origins: str = ""  # comma list of origins, or "*"; empty: no CORS headers
    cors_allow_credentials: bool = False
    # ----- notifications, announcements, admin statistics (issue 15) -----
    announcement_max_chars: int = 2000
    admin_stats_interval: float = 5.0  # seconds between admin.stats pushes (and rate windows)
    notifications_retention_days: int = 90  # read notifications older than this are deleted
    notifications_max_per_user: int = 1000  # newest kept per user; older ones deleted
    # ----- stories (issue 15, part 1) -----
    story_ttl_seconds: int = 86_400  # how long a story is shown after it is posted
    story_max_chars: int = 700  # longest text of a text story, or caption
    # ----- push to offline devices (issue 15, part 3) -----
    fcm_service_account: str = ""  # path of the service-account JSON; empty: no FCM pushes
    fcm_url: str = "https://fcm.googleapis.com"  # HTTP v1 API base
    apns_key_file: str = ""  # path of the .p8 signing key; empty: no APNs pushes
    apns_key_id: str = ""
    apns_team_id: str = ""
    apns_url: str = "https://api.push.apple.com"  # sandbox: https://api.sandbox.push.apple.com
    push_timeout: float = 10.0  # seconds per provider request
    push_queue_size: int = 1000  # pending room events; beyond it new ones are dropped (logged)
    push_retries: int = 3  # attempts after the first on 429/5xx/network errors
    push_backoff: float = 1.0  # seconds before the first retry, doubled each time
    # ----- several nodes (issue 13): Redis bus, room leases, workers -----
    redis_url: str = ""  # redis://host:port/db; empty: one node, in-process bus
    redis_prefix: str = "rt:"  # prefix of every bus channel (several deployments, one Redis)
    node_id: str = ""  # a name for logs and leases; empty: host name and process id
    node_lease_seconds: float = 1.5  # a silent node's rooms move to others after this
    # Presence across nodes: each node's beacon period; a node silent for 3 of
    # them is dead and its users go offline (cluster/presence.py).
    presence_beacon_seconds: float = 5.0
    workers: int = 0  # serve: node processes on one port; 0: one per core with Redis, else 1

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
    if s.log_format not in {"text", "json"}:
        raise SettingsError(f"LOG_FORMAT must be text or json, got {s.log_format!r}")
    if s.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise SettingsError("SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
    for name in (
        "max_frame_bytes",
        "max_message_chars",
        "outbound_queue_bytes",
        "actor_inbox_size",
        "max_upload_bytes",
        "typing_ttl",
        "typing_max_per_minute",
        "call_ring_seconds",
        "call_max_participants",
        "call_max_sdp_bytes",
        "call_max_ice_bytes",
        "call_turn_ttl",
        "announcement_max_chars",
        "admin_stats_interval",
        "notifications_retention_days",
        "notifications_max_per_user",
        "story_ttl_seconds",
        "story_max_chars",
        "push_timeout",
        "push_queue_size",
        "push_backoff",
        "ai_file_max_bytes",
        "ai_file_max_chars",
        "ai_files_per_preset",
        "ai_file_chunk_tokens",
        "node_lease_seconds",
        "presence_beacon_seconds",
    ):
        if getattr(s, name) <= 0:
            raise SettingsError(f"{env_name(name)} must be positive")
    if s.proxy_header.strip().lower() not in {"x-forwarded-for", "forwarded"}:
        raise SettingsError("PROXY_HEADER must be x-forwarded-for or forwarded")
    try:
        parse_networks(s.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"TRUSTED_PROXIES: {exc}") from exc
    if not s.is_postgres:
        s.sqlite_path  # noqa: B018 - raises on a malformed URL
    if s.workers < 0:
        raise SettingsError("WORKERS must be 0 (automatic) or positive")
    if s.redis_url:
        if not s.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"REDIS_URL must start with redis://, rediss:// or unix://, got {s.redis_url!r}"
            )
        if not s.is_postgres:
            # Nodes share their rooms' sequences through the database: an
            # embedded SQLite file belongs to one process.
            raise SettingsError(
                "REDIS_URL (several nodes) needs a PostgreSQL DATABASE_URL; "
                "the embedded SQLite default runs one node"
            )


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
