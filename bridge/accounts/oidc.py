"""An OpenID Connect relying party for Google sign-in (any OIDC provider works).

Two ways in:
- the browser flow: authorization code with PKCE (S256), ``state`` and
  ``nonce``; the server exchanges the code at the provider's token endpoint;
- a mobile app's ID token, obtained with a nonce this server handed out.

Either way the ID token is verified here, never trusted as sent:
signature against the provider's published keys (JWKS, fetched from its
discovery document, cached ``OIDC_JWKS_TTL`` and refetched once when a token
names an unknown key, which is how providers rotate keys), an asymmetric
algorithm from our allowlist (never ``none`` or HS256: a public key must not
become an HMAC secret), issuer, audience (our client ids; with several
audiences the authorised party ``azp`` must be ours), expiry and issue time
against our clock with a small leeway, and the nonce we expect.

Network calls open a client per call (sign-ins are rare); discovery and keys
are cached per process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt

from bridge.errors import AuthError, BadRequest, BridgeError, RestCode

ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
LEEWAY_SECONDS = 30
# A token naming an unknown key refetches the keys, but not more often than this.
MIN_REFETCH_SECONDS = 10.0
GOOGLE_ISSUER = "https://accounts.google.com"
MAX_TOKEN_CHARS = 16 * 1024


class IdTokenInvalid(AuthError):
    default_code = RestCode.ID_TOKEN_INVALID


class ProviderUnavailable(BridgeError):
    default_code = RestCode.PROVIDER_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    audiences: tuple[str, ...]  # the web client id and the mobile ones
    jwks_ttl: float
    timeout: float


@dataclass(frozen=True, slots=True)
class IdClaims:
    subject: str
    email: str | None
    email_verified: bool
    name: str


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcProvider:
    def __init__(
        self, name: str, config: OidcConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_at = 0.0

    @property
    def accepts_id_tokens(self) -> bool:
        return bool(self.config.audiences)

    @property
    def has_code_flow(self) -> bool:
        c = self.config
        return bool(c.client_id and c.client_secret and c.redirect_uri)

    # ----- provider documents ------------------------------------------------

    async def metadata(self) -> dict[str, Any]:
        now = self._clock()
        if self._metadata is None or now - self._metadata_at > self.config.jwks_ttl:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(url)
            if document.get("issuer") != self.config.issuer:
                raise ProviderUnavailable("The provider's discovery document names another issuer.")
            self._metadata, self._metadata_at = document, now
        return self._metadata

    async def _signing_key(self, kid: str | None) -> jwt.PyJWK:
        now = self._clock()
        stale = now - self._keys_at > self.config.jwks_ttl
        unknown = kid not in self._keys and now - self._keys_at > MIN_REFETCH_SECONDS
        if stale or unknown:
            jwks_uri = (await self.metadata()).get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ProviderUnavailable("The provider publishes no jwks_uri.")
            document = await self._get_json(jwks_uri)
            try:
                keyset = jwt.PyJWKSet.from_dict(document)
            except jwt.PyJWKSetError as exc:
                raise ProviderUnavailable("The provider's key set has no usable key.") from exc
            self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
            self._keys_at = now
        key = self._keys.get(kid) if kid else None
        if key is None:
            raise IdTokenInvalid("The ID token is signed with a key the provider does not publish.")
        return key

    async def _get_json(self, url: str) -> dict[str, Any]:
        import httpx  # on first use: a node without Google sign-in never needs it

        try:
            async with httpx.AsyncClient(timeout=self.config.timeout) as client:
                response = await client.get(url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable() from exc
        if not isinstance(document, dict):
            raise ProviderUnavailable()
        return document

    # ----- the browser flow ----------------------------------------------------

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        endpoint = (await self.metadata()).get("authorization_endpoint")
        if not isinstance(endpoint, str):
            raise ProviderUnavailable("The provider publishes no authorization_endpoint.")
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self.config.redirect_uri,
                "scope": "openid email profile",
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce_challenge(code_verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{endpoint}?{query}"

    async def exchange_code(self, code: str, code_verifier: str) -> str:
        """The ID token the provider gives for ``code``."""
        endpoint = (await self.metadata()).get("token_endpoint")
        if not isinstance(endpoint, str):
            raise ProviderUnavailable("The provider publishes no token_endpoint.")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "code_verifier": code_verifier,
        }
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.config.timeout) as client:
                response = await client.post(endpoint, data=form)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable() from exc
        if 400 <= response.status_code < 500:
            # invalid_grant: expired, used, or not issued for this verifier.
            raise BadRequest(
                "The provider refused the authorization code; start the sign-in again.",
                code=RestCode.OIDC_STATE_INVALID,
                field="code",
            )
        try:
            response.raise_for_status()
            id_token = response.json().get("id_token")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise ProviderUnavailable() from exc
        if not isinstance(id_token, str):
            raise ProviderUnavailable("The provider's token answer has no id_token.")
        return id_token

    # ----- ID tokens -----------------------------------------------------------

    @staticmethod
    def unverified_nonce(id_token: str) -> str | None:
        """The nonce claim, read WITHOUT verification: only to find our record."""
        try:
            claims = jwt.decode(id_token[:MAX_TOKEN_CHARS], options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return None
        nonce = claims.get("nonce")
        return nonce if isinstance(nonce, str) else None

    async def verify_id_token(self, id_token: str, *, nonce: str) -> IdClaims:
        if len(id_token) > MAX_TOKEN_CHARS:
            raise IdTokenInvalid("The ID token is too long.")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.InvalidTokenError as exc:
            raise IdTokenInvalid("The ID token is not a JWT.") from exc
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise IdTokenInvalid(f"ID tokens signed with {algorithm!r} are not accepted.")
        key = await self._signing_key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=[algorithm],
                audience=list(self.config.audiences),
                issuer=self._issuers(),
                # Times are checked below against our clock, so tests can move it.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "aud", "sub", "exp", "iat"],
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise IdTokenInvalid("The ID token's signature does not verify.") from exc
        except jwt.InvalidAudienceError as exc:
            raise IdTokenInvalid("The ID token was issued for another application.") from exc
        except jwt.InvalidIssuerError as exc:
            raise IdTokenInvalid("The ID token comes from another issuer.") from exc
        except jwt.InvalidTokenError as exc:
            raise IdTokenInvalid(f"The ID token is not valid: {exc}.") from exc
        return self._check_claims(claims, nonce)

    def _issuers(self) -> list[str]:
        issuer = self.config.issuer
        # Google signs some tokens with the scheme-less form of its issuer.
        return [issuer, "accounts.google.com"] if issuer == GOOGLE_ISSUER else [issuer]

    def _check_claims(self, claims: dict[str, Any], nonce: str) -> IdClaims:
        now = self._clock()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise IdTokenInvalid("The ID token's times are not numbers.")
        if isinstance(exp, bool) or isinstance(iat, bool):
            raise IdTokenInvalid("The ID token's times are not numbers.")
        if exp + LEEWAY_SECONDS <= now:
            raise IdTokenInvalid("The ID token has expired.")
        if iat - LEEWAY_SECONDS > now:
            raise IdTokenInvalid("The ID token was issued in the future.")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") not in self.config.audiences:
            raise IdTokenInvalid("The ID token's authorised party is not this application.")
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got, nonce):
            raise IdTokenInvalid("The ID token's nonce is not the one this sign-in expects.")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise IdTokenInvalid("The ID token has no usable subject.")
        email = claims.get("email")
        verified = claims.get("email_verified") in (True, "true")
        name = claims.get("name")
        return IdClaims(
            subject=subject,
            email=email if isinstance(email, str) and "@" in email else None,
            email_verified=verified,
            name=name.strip()[:64] if isinstance(name, str) else "",
        )
