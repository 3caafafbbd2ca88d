"""The outside world of onboarding, on loopback: Twilio, SendGrid and an OpenID provider.

One small Quart-Trio app, served by hypercorn like our own, speaks each
service's real wire format:

- Twilio: ``POST /2010-04-01/Accounts/{sid}/Messages.json``, HTTP Basic auth,
  form fields ``To``, ``From``/``MessagingServiceSid``, ``Body``; 201 with the
  message resource, or Twilio's error JSON ``{code, message, more_info, status}``.
- SendGrid: ``POST /v3/mail/send`` with a Bearer key and the v3 JSON body;
  202 with no body, or ``{"errors": [...]}``.
- An OpenID Connect provider at ``/oidc``: discovery, a JWKS with a real RSA
  key, ``/authorize`` (the user consents at once and is redirected back with a
  code), and ``/token`` (authorization_code grant with client secret and PKCE
  S256) answering an RS256-signed ID token. ``mint`` signs any claims, for the
  mobile path and for forged tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlencode

import jwt
import trio
from cryptography.hazmat.primitives.asymmetric import rsa
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-auth-token"
TWILIO_FROM = "+15005550006"
SENDGRID_KEY = "SG.test-key"
CLIENT_ID = "web-client.apps.example"
CLIENT_SECRET = "web-client-secret"
MOBILE_CLIENT_ID = "android-client.apps.example"
REDIRECT_URI = "http://app.example/signed-in"
# Made once per test run: RSA key generation is the slow part of a provider.
PROVIDER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Sms:
    to: str
    sender: str
    body: str
    auth: str


@dataclass
class Mail:
    to: str
    sender: str
    subject: str
    body: str


@dataclass
class GoogleUser:
    sub: str
    email: str | None = None
    email_verified: bool = True
    name: str = "Grace Hopper"


@dataclass
class Grant:
    user: GoogleUser
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    method: str
    used: bool = False


@dataclass
class Outside:
    url: str = ""
    sms: list[Sms] = field(default_factory=list)
    mail: list[Mail] = field(default_factory=list)
    # Set by a test to make the next SMS / email fail: (status, JSON body).
    sms_failure: tuple[int, dict[str, Any]] | None = None
    mail_failure: tuple[int, dict[str, Any]] | None = None
    # Who signs in at /authorize next; and misbehaviour for forged-token tests.
    user: GoogleUser = field(default_factory=lambda: GoogleUser(sub="g-1"))
    wrong_nonce: bool = False
    grants: dict[str, Grant] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    key: rsa.RSAPrivateKey = field(default_factory=lambda: PROVIDER_KEY)
    kid: str = "key-1"

    @property
    def issuer(self) -> str:
        return self.url + "/oidc"

    # ----- what tests read ---------------------------------------------------------

    def last_code(self, to: str) -> str:
        """The code in the newest SMS to ``to`` (or email to ``to``)."""
        for message in reversed([*self.sms, *self.mail]):
            if message.to == to:
                return message.body.split()[0]
        raise AssertionError(f"nothing was sent to {to}")

    def sent_to(self, to: str) -> int:
        return sum(1 for m in [*self.sms, *self.mail] if m.to == to)

    # ----- ID tokens ---------------------------------------------------------------

    def claims(self, user: GoogleUser, *, aud: str, nonce: str, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": aud,
            "azp": aud,
            "sub": user.sub,
            "iat": now,
            "exp": now + 3600,
            "nonce": nonce,
            "name": user.name,
        }
        if user.email is not None:
            claims["email"] = user.email
            claims["email_verified"] = user.email_verified
        claims.update(extra)
        return claims

    def mint(
        self,
        claims: dict[str, Any],
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        algorithm: str = "RS256",
    ) -> str:
        return jwt.encode(
            claims, key or self.key, algorithm=algorithm, headers={"kid": kid or self.kid}
        )

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [public]}


def _twilio_error(status: int, code: int, message: str) -> Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Response(json.dumps(body), status=status, content_type="application/json")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def build_app(world: Outside) -> QuartTrio:
    app = QuartTrio("outside", static_folder=None)

    # ----- Twilio ------------------------------------------------------------------

    @app.post("/2010-04-01/Accounts/<sid>/Messages.json")
    async def twilio_send(sid: str) -> Response:
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (TWILIO_SID, TWILIO_TOKEN):
            return _twilio_error(401, 20003, "Authenticate")
        if sid != TWILIO_SID:
            return _twilio_error(404, 20404, "The requested resource was not found")
        form = await request.form
        to, body = form.get("To", ""), form.get("Body", "")
        sender = form.get("From") or form.get("MessagingServiceSid") or ""
        if not sender:
            return _twilio_error(400, 21603, "A 'From' phone number is required.")
        if not to.startswith("+") or not to[1:].isdigit():
            return _twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if world.sms_failure is not None:
            status, error = world.sms_failure
            return _json(error, status)
        world.sms.append(Sms(to, sender, body, auth.username or ""))
        message_sid = "SM" + secrets.token_hex(16)
        return _json(
            {
                "sid": message_sid,
                "account_sid": sid,
                "to": to,
                "from": sender,
                "body": body,
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "price": None,
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json",
            },
            201,
        )

    # ----- SendGrid ------------------------------------------------------------------

    @app.post("/v3/mail/send")
    async def sendgrid_send() -> Response:
        if request.headers.get("Authorization") != f"Bearer {SENDGRID_KEY}":
            return _json(
                {
                    "errors": [
                        {
                            "message": "The provided authorization grant is invalid, "
                            "expired, or revoked",
                            "field": None,
                            "help": None,
                        }
                    ]
                },
                401,
            )
        payload = await request.get_json()
        try:
            to = payload["personalizations"][0]["to"][0]["email"]
            sender = payload["from"]["email"]
            subject = payload["subject"]
            body = next(c["value"] for c in payload["content"] if c["type"] == "text/plain")
        except (KeyError, IndexError, TypeError, StopIteration):
            return _json({"errors": [{"message": "Bad Request", "field": None}]}, 400)
        if world.mail_failure is not None:
            status, error = world.mail_failure
            return _json(error, status)
        world.mail.append(Mail(to, sender, subject, body))
        return Response(b"", status=202, headers={"X-Message-Id": secrets.token_hex(8)})

    # ----- OpenID Connect ----------------------------------------------------------

    @app.get("/oidc/.well-known/openid-configuration")
    async def discovery() -> Response:
        base = world.issuer
        return _json(
            {
                "issuer": base,
                "authorization_endpoint": base + "/authorize",
                "token_endpoint": base + "/token",
                "jwks_uri": base + "/certs",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256", "plain"],
            }
        )

    @app.get("/oidc/certs")
    async def certs() -> Response:
        return _json(world.jwks())

    @app.get("/oidc/authorize")
    async def authorize() -> Response:
        args = request.args.to_dict()
        world.authorize_requests.append(args)
        if args.get("response_type") != "code" or args.get("client_id") != CLIENT_ID:
            return _json({"error": "invalid_request"}, 400)
        code = secrets.token_urlsafe(24)
        world.grants[code] = Grant(
            user=world.user,
            client_id=args["client_id"],
            redirect_uri=args.get("redirect_uri", ""),
            nonce=args.get("nonce", ""),
            challenge=args.get("code_challenge", ""),
            method=args.get("code_challenge_method", "plain"),
        )
        query = urlencode({"code": code, "state": args.get("state", "")})
        return Response(b"", status=302, headers={"Location": f"{args['redirect_uri']}?{query}"})

    @app.post("/oidc/token")
    async def token() -> Response:
        form = (await request.form).to_dict()
        world.token_requests.append(form)
        grant = world.grants.get(form.get("code", ""))
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.used
            or form.get("client_id") != grant.client_id
            or form.get("client_secret") != CLIENT_SECRET
            or form.get("redirect_uri") != grant.redirect_uri
        ):
            return _json({"error": "invalid_grant"}, 400)
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if grant.method != "S256" or digest.rstrip(b"=").decode() != grant.challenge:
            return _json({"error": "invalid_grant", "error_description": "PKCE failed"}, 400)
        grant.used = True
        nonce = "not-the-nonce" if world.wrong_nonce else grant.nonce
        id_token = world.mint(world.claims(grant.user, aud=grant.client_id, nonce=nonce))
        return _json(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 3599,
                "scope": "openid email profile",
                "id_token": id_token,
            }
        )

    return app


@asynccontextmanager
async def open_outside() -> AsyncIterator[Outside]:
    world = Outside()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        with trio.fail_after(10):
            binds: list[str] = await nursery.start(partial(serve, build_app(world), config))
        world.url = binds[0]
        yield world
        nursery.cancel_scope.cancel()
