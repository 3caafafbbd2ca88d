"""CORS for web apps on another origin, and the Origin rule of the ``/ws`` upgrade.

``CORS_ORIGINS`` is a comma list of origins (``https://app.example.com``,
``http://localhost:5173``) or ``*``. Unset or empty: the server sends no CORS
header at all, so browsers keep every other origin out (the app the server
itself serves at ``/app`` is same-origin and needs none).

When it is set:

- A request whose ``Origin`` is listed gets ``Access-Control-Allow-Origin``
  echoing that origin (``*`` when the list is ``*``), the headers a script may
  read (``Access-Control-Expose-Headers``), and ``Vary: Origin`` on every
  response so that caches never serve one origin's answer to another.
- A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a
  listed origin is answered 204 with the methods and headers the API accepts
  and ``Access-Control-Max-Age``; one asking for a method or header outside
  those, or coming from an origin not listed, gets 403 ``forbidden`` and no
  CORS header, so the browser blocks the real request.
- Credentials: the API authenticates with a bearer header, which needs no
  credentialed requests. ``CORS_ALLOW_CREDENTIALS=true`` adds
  ``Access-Control-Allow-Credentials: true`` for listed origins (cookies, such
  as Google sign-in's state cookie); it is refused together with ``*``, which
  would hand every site on the web the user's cookies.
- The WebSocket upgrade (``ws_origin_allowed``) accepts a listed origin, the
  server's own origin (same host as the ``Host`` header) and a request
  without ``Origin`` (not a browser); any other is refused with 403 before
  the upgrade.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from quart import Response, request
from quart_trio import QuartTrio

from bridge.errors import Forbidden
from realtime_server.base.settings import Settings, SettingsError

__all__ = ["AllowList", "install", "parse_origins", "ws_origin_allowed"]

ALLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Request headers a browser may send besides the CORS-safelisted ones.
ALLOW_HEADERS = ("authorization", "content-type", "if-none-match")
EXPOSE_HEADERS = ("Retry-After", "ETag", "Location")
MAX_AGE = 600  # seconds a browser may cache a preflight (Chromium caps it at 7200)


class AllowList:
    """The parsed ``CORS_ORIGINS``: normalised origins, or any (``*``)."""

    __slots__ = ("any", "origins")

    def __init__(self, origins: frozenset[str], any_origin: bool) -> None:
        self.origins = origins
        self.any = any_origin

    def __bool__(self) -> bool:
        return self.any or bool(self.origins)

    def allows(self, origin: str) -> bool:
        return self.any or _normalise(origin) in self.origins


def _normalise(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


@lru_cache(maxsize=8)
def parse_origins(raw: str) -> AllowList:
    """Parse ``CORS_ORIGINS``; raises ``SettingsError`` for an entry that is no origin."""
    origins: set[str] = set()
    any_origin = False
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        if entry == "*":
            any_origin = True
            continue
        parts = urlsplit(entry)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise SettingsError(
                f"CORS_ORIGINS entry {entry!r} is not an origin like https://app.example.com"
            )
        origins.add(_normalise(entry))
    return AllowList(frozenset(origins), any_origin)


def ws_origin_allowed(settings: Settings, raw_origin: bytes | None, host: str | None) -> bool:
    """May a WebSocket upgrade with this ``Origin`` header (and ``Host``) go ahead?"""
    if raw_origin is None:
        return True  # not a browser: Origin is a browser's promise, nothing to check
    origin = raw_origin.decode("latin-1")
    allowed = parse_origins(settings.cors_origins)
    if not allowed:
        return True  # no list: the gateway accepts every origin, as before
    if allowed.allows(origin):
        return True
    netloc = urlsplit(origin.strip()).netloc.lower()
    return host is not None and netloc == host.strip().lower()


def install(app: QuartTrio, settings: Settings) -> None:
    """Answer preflights and add CORS headers, when ``CORS_ORIGINS`` is set."""
    allowed = parse_origins(settings.cors_origins)
    credentials = settings.cors_allow_credentials
    if credentials and allowed.any:
        raise SettingsError("CORS_ALLOW_CREDENTIALS cannot be used with CORS_ORIGINS=*")
    if not allowed:
        return

    def allow_origin(origin: str) -> str:
        return "*" if allowed.any and not credentials else origin

    @app.before_request
    async def preflight() -> Response | None:
        origin = request.headers.get("Origin")
        wanted = request.headers.get("Access-Control-Request-Method")
        if request.method != "OPTIONS" or origin is None or wanted is None:
            return None
        headers = [
            h.strip().lower()
            for h in request.headers.get("Access-Control-Request-Headers", "").split(",")
            if h.strip()
        ]
        if not allowed.allows(origin):
            raise Forbidden(f"Origin {origin!r} is not allowed (CORS_ORIGINS).")
        if wanted.upper() not in ALLOW_METHODS:
            raise Forbidden(f"Method {wanted!r} is not allowed from another origin.")
        refused = [h for h in headers if h not in ALLOW_HEADERS]
        if refused:
            raise Forbidden(f"Request header {refused[0]!r} is not allowed from another origin.")
        response = Response(b"", status=204)
        response.headers["Access-Control-Allow-Methods"] = ", ".join(ALLOW_METHODS)
        response.headers["Access-Control-Allow-Headers"] = ", ".join(ALLOW_HEADERS)
        response.headers["Access-Control-Max-Age"] = str(MAX_AGE)
        response.headers["Access-Control-Allow-Origin"] = allow_origin(origin)
        if credentials:
            response.headers["Access-Control-Allow-Credentials"] = "true"
        return response

    @app.after_request
    async def add_headers(response: Response) -> Response:
        vary = {v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()}
        vary.add("Origin")
        if request.method == "OPTIONS":
            vary |= {"Access-Control-Request-Method", "Access-Control-Request-Headers"}
        response.headers["Vary"] = ", ".join(sorted(vary))
        origin = request.headers.get("Origin")
        if origin is None or not allowed.allows(origin):
            return response
        if "Access-Control-Allow-Origin" not in response.headers:
            response.headers["Access-Control-Allow-Origin"] = allow_origin(origin)
            response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSE_HEADERS)
            if credentials:
                response.headers["Access-Control-Allow-Credentials"] = "true"
        return response
