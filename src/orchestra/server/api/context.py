"""What every endpoint is handed: the gateway, the identity directory, the authoriser.

:class:`ApiContext` authenticates a request — a gateway key (``x-api-key`` or
``Authorization: Bearer``), an OpenID Connect bearer token (a JWT) or the web login's
session cookie — into an :class:`~orchestra.identity.Identity`. It is rebuilt on every
configuration reload (the directory follows the new organisation and group mapping).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from orchestra.accounting import Accounting
from orchestra.app import Orchestra
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import ApiError
from orchestra.gateway import GatewayApp
from orchestra.identity import (
    ANONYMOUS,
    COOKIE,
    Authorizer,
    Identity,
    IdentityDirectory,
    NotAuthenticated,
    OIDCClient,
    RoleAuthorizer,
    SessionRevocations,
    SessionSigner,
    TokenRefused,
    load_session_secret,
    looks_like_jwt,
)
from orchestra.policy import Principal
from orchestra.store.tables.engine import RunRow

log = logging.getLogger("orchestra.server")


@dataclass(frozen=True)
class RunRequest:
    """A run to start for an authenticated caller (``POST /api/v1/runs``)."""

    task: str
    repo: Path
    """The allow-listed repository's path (the caller named it by its name)."""
    developer: str
    """Whom the run is charged to (and whose agent pool it uses)."""
    team: str | None
    principal: Principal | None
    """Who asks, for the ``start_run`` policies."""
    budget_usd: float | None = None
    pipeline: str | None = None


@dataclass(frozen=True)
class ResumeRequest:
    """A run to continue (``POST /api/v1/runs/{id}/resume``)."""

    run_id: str
    principal: Principal | None
    budget_usd: float | None = None


class RunHost(Protocol):
    """The server process's engine (:class:`orchestra.server.resuming.ServerEngine`)."""

    def start_run(self, request: RunRequest) -> str:
        """Start the run; its id."""
        ...

    def resume(self, request: ResumeRequest) -> RunRow:
        """Continue the run; its row."""
        ...


class ServiceUnavailable(ApiError):
    """Something an endpoint needs is down (the database, the OpenID provider)."""

    status = 503


class NotConfigured(ApiError):
    """The endpoint's feature is not configured on this server (SSO, a config file)."""

    status = 404


@dataclass
class ApiContext:
    """The REST API's view of the server (one per application)."""

    config: OrchestraConfig
    services: Callable[[], Orchestra] | None = None
    """The composition root (runs, accounting) — built on first use."""
    authorizer: Authorizer = field(default_factory=RoleAuthorizer)
    clock: Callable[[], float] = time.time
    oidc: OIDCClient | None = None
    sessions: SessionSigner | None = None
    app: GatewayApp | None = None
    """Set once the gateway application around the API exists."""
    engine: RunHost | None = None
    """The engine that starts and resumes runs (``None``: this server starts none)."""
    base_dir: Path | None = None
    """``orchestra.yaml``'s folder (relative paths of ``server.repositories``)."""
    knowledge: Any = None
    """The server's knowledge store (``orchestra.knowledge.KnowledgeStore``), once opened."""
    _directory: IdentityDirectory | None = None
    _services: Orchestra | None = None

    def __post_init__(self) -> None:
        settings = self.config.identity.oidc
        if self.oidc is None and settings is not None:
            self.oidc = OIDCClient(settings, clock=self.now)
        if self.sessions is None:
            self.sessions = SessionSigner(
                load_session_secret(), ttl_s=self.config.identity.session_ttl_s, clock=self.now
            )

    def now(self) -> float:
        """The time tokens and sessions are checked at (``clock`` may be replaced in tests)."""
        return self.clock()

    @property
    def directory(self) -> IdentityDirectory:
        """Identities for the gateway's current configuration."""
        config = self.current_config
        if self._directory is None or self._directory.config is not config:
            self._directory = IdentityDirectory(config)
        return self._directory

    @property
    def current_config(self) -> OrchestraConfig:
        """The configuration in force (the gateway's snapshot, which reloads replace)."""
        if self.app is not None:
            return self.app.gateway.snapshot.config
        return self.config

    def current_config_of(self) -> OrchestraConfig:
        """:attr:`current_config` as a function (for the policy engine's rebuilds)."""
        return self.current_config

    def orchestra(self) -> Orchestra:
        """The composition root, opened on first use."""
        if self._services is None:
            if self.services is None:
                raise NotAuthenticated("this server has no database services")
            self._services = self.services()
        return self._services

    def accounting(self) -> Accounting:
        """The database accounting behind the gateway (keys, budgets, audit)."""
        accounting = getattr(self.app.gateway.accountant, "accounting", None) if self.app else None
        if not isinstance(accounting, Accounting):
            raise NotConfigured(
                "this server has no database accounting (keys, budgets and the audit log)",
                hint="serve with a database: orchestra serve --database-url URL",
            )
        return accounting

    async def authenticate(
        self, headers: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Identity:
        """The identity behind a request (``ANONYMOUS`` when it brings no credential)."""
        credential = _bearer(headers)
        if credential is not None:
            if looks_like_jwt(credential):
                return await self._token_identity(credential)
            return await self._key_identity(headers)
        session = cookies.get(COOKIE)
        if session and self.sessions is not None:
            self.share_logouts()
            return await anyio.to_thread.run_sync(self.sessions.check, session)
        return ANONYMOUS

    def share_logouts(self) -> None:
        """Keep logouts in the server's database, so every worker refuses an ended session
        (without database services: in this process only)."""
        if self.sessions is None or self.sessions.revocations is not None:
            return
        if self.services is not None:
            self.sessions.revocations = SessionRevocations(self.orchestra().database)

    async def _token_identity(self, token: str) -> Identity:
        if self.oidc is None:
            raise TokenRefused(
                "a JWT bearer token came but no OpenID provider is configured",
                hint="configure identity.oidc, or send a gateway key",
                reason="issuer",
            )
        claims = await self.oidc.verify(token)
        return self.directory.from_claims(claims, via="oidc")

    async def _key_identity(self, headers: Mapping[str, str]) -> Identity:
        if self.app is None:
            raise NotAuthenticated("gateway keys are not accepted here")
        caller = await self.app.gateway.authenticate(headers)
        return self.directory.for_key(caller.key_id, caller.developer, admin=caller.admin)

    async def aclose(self) -> None:
        """Release the OIDC client and the services."""
        if self.oidc is not None:
            await self.oidc.aclose()
        if self._services is not None:
            self._services.close()
            self._services = None


def _bearer(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None
