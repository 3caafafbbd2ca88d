"""The web app at ``/app``: static files built from clients/web into bridge/static/app.

They are committed as built assets and shipped as package data, so a plain
``pip install`` serves them and nothing is fetched from a CDN at run time.

Served from a ``before_request`` hook rather than a route: ``/app`` is not part
of the JSON API, so it stays out of the URL map that ``/openapi.json``
documents. Only files that exist in the directory, by bare name, are served
(no path separators: nothing outside it can be reached). ``index.html`` is
revalidated on every load so a new build shows up at once; the other files
are small and revalidated too (``no-cache`` still lets the browser reuse them
after a 304-free check of its own copy).
"""

from __future__ import annotations

import mimetypes
import re
from importlib import resources
from importlib.resources.abc import Traversable

from quart import Response, request
from quart_trio import QuartTrio

__all__ = ["PREFIX", "install"]

PREFIX = "/app"

# What the page itself needs: its own scripts and styles, images it made into
# blob: URLs, its own socket, and the microphone streams of a call.
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "connect-src 'self' ws://{host} wss://{host}; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def _files() -> dict[str, Traversable]:
    root = resources.files("bridge").joinpath("static", "app")
    if not root.is_dir():
        return {}
    return {entry.name: entry for entry in root.iterdir() if entry.is_file()}


def install(app: QuartTrio) -> None:
    """Serve ``/app`` (redirects to ``/app/``), ``/app/`` and ``/app/<file>``."""
    files = _files()

    @app.before_request
    async def serve_app() -> Response | None:
        path = request.path
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return None
        if request.method not in ("GET", "HEAD"):
            return None  # falls through to the API's 404/405 JSON answer
        if path == PREFIX:
            return Response(b"", status=308, headers={"Location": PREFIX + "/"})
        name = path[len(PREFIX) + 1 :] or "index.html"
        entry = files.get(name)
        if entry is None or "/" in name:
            return None
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        response = Response(entry.read_bytes(), content_type=content_type)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Older browsers do not count ws:// to the same host as 'self': name it.
        host = request.host if _HOST.fullmatch(request.host) else "'none'"
        response.headers["Content-Security-Policy"] = CSP.format(host=host)
        return response
