"""The REST application: ``create_app(services)`` returns a QuartTrio app to serve.

Routes live in one module per area (``routes_*``) and are declared through
``bridge.http.routing.Router``, which also feeds ``/openapi.json``. Every error,
ours or Quart's (unknown path, wrong method, body too large), leaves through
``bridge.http.errors.handle_exception`` as the same JSON shape.
"""

from __future__ import annotations

from quart_trio import QuartTrio

from bridge.http import cors, security_headers, webapp
from bridge.http.access import install as install_access
from bridge.http.errors import handle_exception
from bridge.http.routing import Router
from bridge.http.url_rules import SharedBuilderRule
from bridge.routes import ai as routes_ai
from bridge.routes import ai_files as routes_ai_files
from bridge.routes import auth as routes_auth
from bridge.routes import billing as routes_billing
from bridge.routes import calls as routes_calls
from bridge.routes import contacts as routes_contacts
from bridge.routes import groups as routes_groups
from bridge.routes import media as routes_media
from bridge.routes import messages as routes_messages
from bridge.routes import notifications as routes_notifications
from bridge.routes import oidc as routes_oidc
from bridge.routes import ops as routes_ops
from bridge.routes import password as routes_password
from bridge.routes import phone as routes_phone
from bridge.routes import pins as routes_pins
from bridge.routes import presence as routes_presence
from bridge.routes import profile as routes_profile
from bridge.routes import push as routes_push
from bridge.routes import rooms as routes_rooms
from bridge.routes import sessions as routes_sessions
from bridge.routes import stories as routes_stories
from bridge.routes import system as routes_system
from bridge.routes import users as routes_users
from bridge.services import BridgeServices

__all__ = ["BridgeServices", "create_app"]


def create_app(services: BridgeServices) -> QuartTrio:
    # No static folder: this app serves JSON only, and a static route would be
    # one more path the OpenAPI document does not describe.
    app = QuartTrio("bridge", static_folder=None)
    # Before any route: each node's rules reuse the URL builders compiled for
    # the first app in this process (bridge/http/url_rules.py says why that is safe).
    app.url_rule_class = SharedBuilderRule
    # Quart refuses a larger body by Content-Length before reading it, and
    # stops reading a chunked one as soon as it crosses the limit.
    app.config["MAX_CONTENT_LENGTH"] = services.settings.max_request_bytes
    app.config["PROPAGATE_EXCEPTIONS"] = False
    install_access(app)  # request ids, the access log, REST metrics (issue 17)
    app.register_error_handler(Exception, handle_exception)
    security_headers.install(app)

    # Signed-out sessions stay refused across restarts: load them before serving,
    # and close a signed-out session's sockets at once (issue 12).
    async def load_signed_out() -> None:
        await services.tokens.load_signed_out()

    app.before_serving(load_signed_out)
    if services.revoke_sockets is not None:
        services.tokens.on_signed_out = services.revoke_sockets

    router = Router(app, services.tokens)
    for routes in (
        routes_auth,
        routes_users,
        routes_rooms,
        routes_system,
        routes_ops,
        routes_groups,
        routes_media,
        routes_presence,
        routes_ai,
        routes_ai_files,  # its upload request class: after media's, before profile's
        routes_messages,
        routes_pins,
        routes_calls,
        routes_billing,
        # Onboarding (issue 8). routes_profile wraps the request class that
        # media installed (a bigger body limit for avatars): keep it after.
        routes_phone,
        routes_oidc,
        routes_password,
        routes_profile,
        routes_contacts,
        routes_sessions,
        routes_notifications,
        routes_stories,
        routes_push,
    ):
        routes.add_routes(router, services)
    cors.install(app, services.settings)  # CORS_ORIGINS: preflights and headers
    webapp.install(app)  # the web app's static files at /app
    app.extensions["bridge"] = services
    return app
