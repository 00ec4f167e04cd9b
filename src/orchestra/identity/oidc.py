"""OpenID Connect: discovery, the provider's keys, token validation and the code flow.

Tokens are checked with ``joserfc`` (the JOSE library of authlib's authors, which authlib's
own ``authlib.jose`` now defers to); the web login's authorisation-code flow with PKCE
uses authlib's OAuth 2 client. A token is refused, with the reason named, when:

* its header names an algorithm outside ``identity.oidc.algorithms`` (asymmetric only:
  ``alg=none`` and an HMAC token made with the provider's public key are refused before
  any key is looked at);
* its key id is not among the provider's keys (after one refresh of the key set);
* its signature does not verify;
* its issuer, audience, expiry or not-before do not match.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from orchestra.config.identity import OIDCSettings
from orchestra.identity.errors import IdentityUnavailable, TokenRefused

Clock = Callable[[], float]


def _segment(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def token_header(token: str) -> dict[str, Any]:
    """The unverified JOSE header of a compact JWT (to pick the algorithm and key)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRefused(
            "the bearer token is not a JWT (three dot-separated parts)",
            hint="send a gateway key or an access token from the configured OpenID provider",
            reason="malformed",
        )
    try:
        header = _segment(parts[0])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise TokenRefused(
            "the bearer token's header is not base64url JSON",
            hint="send the token exactly as the provider issued it",
            reason="malformed",
        ) from exc
    if not isinstance(header, dict):
        raise TokenRefused("the bearer token's header is not an object", reason="malformed")
    return header


def looks_like_jwt(value: str) -> bool:
    """Whether a credential has the shape of a compact JWT (gateway keys do not)."""
    return value.count(".") == 2 and value.startswith("ey")


class OIDCClient:
    """One OpenID provider: its metadata and keys (cached), token checks, the code flow."""

    def __init__(
        self,
        settings: OIDCSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.time,
        client_secret: str | None = None,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._clock = clock
        self._secret = client_secret
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    @property
    def issuer(self) -> str:
        """The configured issuer (without a trailing slash)."""
        return self.settings.issuer.rstrip("/")

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            # A client per fetch: discovery and keys are fetched rarely (then cached), and a
            # client kept open would be tied to the event loop that made it.
            async with httpx.AsyncClient(timeout=10.0, transport=self._transport) as http:
                response = await http.get(url)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IdentityUnavailable(
                f"the OpenID provider did not answer {url}: {exc}",
                hint="check identity.oidc.issuer and that the provider is reachable",
            ) from exc
        if not isinstance(data, dict):
            raise IdentityUnavailable(f"{url} did not return a JSON object")
        return data

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once)."""
        if self._metadata is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            data = await self._get_json(url)
            if str(data.get("issuer", "")).rstrip("/") != self.issuer:
                raise IdentityUnavailable(
                    f"the discovery document at {url} names issuer {data.get('issuer')!r}",
                    hint="identity.oidc.issuer must be exactly the provider's issuer",
                )
            self._metadata = data
        return self._metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys (JWKS), fetched once and on an unknown key id."""
        if self._keys is None or refresh:
            meta = await self.metadata()
            self._keys = KeySet.import_key_set(await self._get_json(str(meta["jwks_uri"])))  # type: ignore[arg-type]
        return self._keys

    async def verify(
        self, token: str, *, audience: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The claims of ``token`` once every check passed (see the module's docstring).
        ``audience`` defaults to the API's (``identity.oidc.audience``)."""
        header = token_header(token)
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise TokenRefused(
                f"token signed with alg={alg!r}; accepted: {', '.join(self.settings.algorithms)}",
                hint="unsigned and HMAC-signed tokens are never accepted",
                reason="algorithm",
            )
        keys = await self._key_set_for(header.get("kid"))
        try:
            decoded = jwt.decode(token, keys, algorithms=self.settings.algorithms)
        except JoseError as exc:
            raise TokenRefused(
                f"the token's signature does not verify ({exc.error})",
                hint="the token was not issued by the configured provider, or was altered",
                reason="signature",
            ) from exc
        claims = dict(decoded.claims)
        self._check_claims(claims, audience or self.settings.audience, nonce)
        return claims

    async def _key_set_for(self, kid: object) -> KeySet:
        keys = await self.keys()
        known = {k.kid for k in keys.keys}
        if kid is not None and kid not in known:
            keys = await self.keys(refresh=True)
            if kid not in {k.kid for k in keys.keys}:
                raise TokenRefused(
                    f"the token's key id {kid!r} is not one of {self.issuer}'s keys",
                    hint="the token comes from another provider, or its key was retired",
                    reason="unknown_key",
                )
        return keys

    def _check_claims(self, claims: dict[str, Any], audience: str, nonce: str | None) -> None:
        issuer = str(claims.get("iss", "")).rstrip("/")
        if issuer != self.issuer:
            raise TokenRefused(
                f"token issued by {claims.get('iss')!r}, expected {self.issuer!r}",
                hint="use a token from the configured provider (identity.oidc.issuer)",
                reason="issuer",
            )
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audience not in audiences:
            raise TokenRefused(
                f"token for audience {aud!r}, expected {audience!r}",
                hint="request the token for this API (resource/audience "
                f"{self.settings.audience!r})",
                reason="audience",
            )
        self._check_times(claims)
        if nonce is not None and claims.get("nonce") != nonce:
            raise TokenRefused("the ID token's nonce does not match the login", reason="nonce")

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        leeway = self.settings.leeway_s
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise TokenRefused("the token has no expiry (exp)", reason="malformed")
        if exp <= now - leeway:
            raise TokenRefused(
                f"the token expired {int(now - exp)} s ago",
                hint="get a new token from the provider (or log in again)",
                reason="expired",
            )
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf > now + leeway:
            raise TokenRefused("the token is not valid yet (nbf)", reason="not_yet_valid")

    def _oauth(self, redirect_uri: str, verifier: str | None = None) -> AsyncOAuth2Client:
        secret = self._secret
        if secret is None:
            secret = os.environ.get(self.settings.client_secret_env)
        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=secret,
            scope=" ".join(self.settings.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=10.0,
        )

    async def authorization_url(self, redirect_uri: str) -> tuple[str, dict[str, str]]:
        """Where to send the browser, and the state (state, PKCE verifier, nonce) to keep."""
        meta = await self.metadata()
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        async with self._oauth(redirect_uri) as client:
            url, state = client.create_authorization_url(
                str(meta["authorization_endpoint"]),
                code_verifier=verifier,
                nonce=nonce,
                resource=self.settings.audience,
            )
        return url, {"state": state, "verifier": verifier, "nonce": nonce}

    async def exchange(self, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        """Trade the authorisation code for tokens (the client authenticates with its secret)."""
        meta = await self.metadata()
        async with self._oauth(redirect_uri) as client:
            try:
                token = await client.fetch_token(
                    str(meta["token_endpoint"]),
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                    resource=self.settings.audience,
                )
            except Exception as exc:  # authlib raises OAuthError or httpx errors
                raise TokenRefused(
                    f"the provider refused the authorisation code: {exc}",
                    hint="start the login again at /api/v1/auth/login",
                    reason="code",
                ) from exc
        return dict(token)

    async def end_session_url(self, post_logout_redirect_uri: str | None = None) -> str | None:
        """The provider's logout endpoint (RP-initiated logout), if it has one."""
        meta = await self.metadata()
        endpoint = meta.get("end_session_endpoint")
        if not endpoint:
            return None
        query = httpx.QueryParams({"client_id": self.settings.client_id})
        if post_logout_redirect_uri:
            query = query.set("post_logout_redirect_uri", post_logout_redirect_uri)
        return f"{endpoint}?{query}"

    async def aclose(self) -> None:
        """Forget the cached metadata and keys."""
        self._metadata = None
        self._keys = None
