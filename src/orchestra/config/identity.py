"""Configuration section ``identity``: who a request is (SSO, service keys, the CLI's actor).

OpenID Connect settings name the issuer and the API's audience; the client secret is read
from an environment variable, never from this file. Group claims map to roles and units.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from orchestra.config.models import StrictModel
from orchestra.config.org import NAME_PATTERN, RoleName

SAFE_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
"""Signature algorithms a token may use: asymmetric only. ``none`` and the HMAC family
(``HS256`` ...) are refused, so a token "signed" with the provider's public key as an HMAC
secret (key confusion) is never accepted."""


class OIDCSettings(StrictModel):
    """The OpenID provider the web login and API bearer tokens come from."""

    issuer: str = Field(pattern=r"^https?://")
    """The provider's issuer URL; discovery reads ``<issuer>/.well-known/openid-configuration``."""
    client_id: str = Field(min_length=1)
    client_secret_env: str = "ORCHESTRA_OIDC_CLIENT_SECRET"  # noqa: S105 (a variable name)
    """Environment variable holding the client secret (the web login's code exchange)."""
    audience: str = Field(min_length=1)
    """The ``aud`` an API bearer token must carry (the API's resource indicator)."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    groups_claim: str = "groups"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    leeway_s: int = Field(default=30, ge=0, le=300)
    """Clock skew tolerated on ``exp``/``nbf``/``iat``."""

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        unsafe = [alg for alg in value if alg not in SAFE_ALGORITHMS]
        if unsafe:
            raise ValueError(
                f"algorithm(s) {', '.join(unsafe)} not accepted; use asymmetric ones: "
                + ", ".join(SAFE_ALGORITHMS)
            )
        return value


class GroupMapping(StrictModel):
    """What membership of one identity-provider group grants."""

    group: str = Field(min_length=1)
    roles: list[RoleName] = Field(default_factory=list)
    unit: str | None = Field(default=None, pattern=NAME_PATTERN)
    """The organisation unit members belong to (its name in ``organisation.units``)."""
    lead_of: list[str] = Field(default_factory=list)
    """Units whose lead members are (a lead scoped to those units and everything below)."""


class ServiceKey(StrictModel):
    """A gateway key used by a service, limited to the actions listed."""

    key_id: str = Field(min_length=1)
    actions: list[str] = Field(min_length=1)


class IdentitySection(StrictModel):
    """SSO, group mapping, service-key scopes and the CLI's actor."""

    oidc: OIDCSettings | None = None
    groups: list[GroupMapping] = Field(default_factory=list)
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    """Longest a web login session lasts (it also ends when the ID token expires)."""
    service_keys: list[ServiceKey] = Field(default_factory=list)
    cli_developer: str | None = Field(default=None, pattern=NAME_PATTERN)
    """The developer the CLI acts as (``$ORCHESTRA_DEVELOPER`` wins; see docs/sso.md)."""
    anonymous: Literal["refuse"] = "refuse"
    """Requests without credentials are refused (401) on every API endpoint but the
    public ones (``GET /api``, the OpenAPI document, the login redirect)."""
