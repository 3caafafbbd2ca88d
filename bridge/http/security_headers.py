"""Web security headers on every REST response (issue 12).

Every response, errors included:

- ``X-Content-Type-Options: nosniff``: a browser never runs a JSON answer or
  an uploaded file as something else;
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'`` (with
  ``default-src 'none'``: nothing here is a page that loads anything): no
  response can be framed (clickjacking);
- ``Referrer-Policy: no-referrer``.

Caching: answers are per user and often secret, so a response that does not
choose its own ``Cache-Control`` (media and avatars do, privately) gets
``no-store``. Everything under ``/auth/`` (tokens, codes, sign-in state and
its cookie) is ``no-store`` whatever it set, with ``Pragma: no-cache`` for
HTTP/1.0 caches. CORS is not decided here.
"""

from __future__ import annotations

from quart import Response, request
from quart_trio import QuartTrio

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
NO_STORE = "no-store"
SECRET_PREFIXES = ("/auth/",)


async def add_security_headers(response: Response) -> Response:
    headers = response.headers
    for name, value in HEADERS.items():
        headers.setdefault(name, value)
    if request.path.startswith(SECRET_PREFIXES):
        headers["Cache-Control"] = NO_STORE
        headers["Pragma"] = "no-cache"
    else:
        headers.setdefault("Cache-Control", NO_STORE)
    return response


def install(app: QuartTrio) -> None:
    app.after_request(add_security_headers)
