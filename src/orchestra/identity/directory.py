"""Building identities from what authenticated a caller: a gateway key, token claims, the CLI.

The configuration says who people are (``organisation.developers``: role and unit), which
identity-provider groups grant which roles and units (``identity.groups``), and which keys
are service keys scoped to a few actions (``identity.service_keys``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from orchestra.config.schema import OrchestraConfig
from orchestra.identity.errors import NotAuthenticated
from orchestra.identity.principal import Identity, Principal

DEVELOPER_ENV = "ORCHESTRA_DEVELOPER"
"""Environment variable naming the developer the CLI acts as."""


@dataclass(frozen=True)
class _Grant:
    roles: frozenset[str]
    unit: str | None
    lead_of: tuple[str, ...]


class IdentityDirectory:
    """Identities for one configuration (rebuilt on reload)."""

    def __init__(self, config: OrchestraConfig) -> None:
        self.config = config
        org = config.organisation
        self._parents = {u.name: u.parent for u in org.units}
        self._developers = {d.name: d for d in org.developers}
        self._scopes = {s.key_id: frozenset(s.actions) for s in config.identity.service_keys}
        self._groups = {
            g.group: _Grant(
                frozenset(g.roles),
                self.unit_path(g.unit) if g.unit else None,
                tuple(path for u in g.lead_of if (path := self.unit_path(u))),
            )
            for g in config.identity.groups
        }

    def unit_path(self, unit: str | None) -> str | None:
        """``squad-a`` → ``eng/payments/squad-a`` (names above it, from the top)."""
        if unit is None:
            return None
        path = [unit]
        seen = {unit}
        parent = self._parents.get(unit)
        while parent is not None and parent not in seen:
            path.append(parent)
            seen.add(parent)
            parent = self._parents.get(parent)
        return "/".join(reversed(path))

    def budget_unit(self, scope: str, subject: str) -> str | None:
        """The unit a budget belongs to (a team's, or a developer's home unit); ``None``
        for organisation and run budgets, which no scoped lead may change."""
        if scope == "team":
            return self.unit_path(subject)
        if scope == "developer":
            dev = self._developers.get(subject)
            return self.unit_path(dev.unit) if dev is not None else None
        return None

    def developer(self, name: str, *, via: str, credential_id: str | None = None) -> Identity:
        """A configured developer (no role if unknown: every action is then refused)."""
        dev = self._developers.get(name)
        roles = frozenset({dev.role}) if dev is not None else frozenset()
        unit = self.unit_path(dev.unit) if dev is not None else None
        lead_of = (unit,) if dev is not None and dev.role == "lead" and unit else ()
        principal = Principal("developer", name, roles, unit, lead_of)
        return Identity(principal, via=via, credential_id=credential_id)

    def for_key(self, key_id: str, developer: str, *, admin: bool) -> Identity:
        """The identity a gateway key authenticates: a scoped service, or its developer
        (an admin key adds the admin role)."""
        scopes = self._scopes.get(key_id)
        if scopes is not None:
            principal = Principal("service", key_id, frozenset(), None)
            return Identity(principal, via="key", scopes=scopes, credential_id=key_id)
        identity = self.developer(developer, via="key", credential_id=key_id)
        if admin:
            p = identity.principal
            principal = Principal(p.kind, p.id, p.roles | {"admin"}, p.unit, p.lead_of)
            identity = Identity(principal, via="key", credential_id=key_id)
        return identity

    def from_claims(self, claims: Mapping[str, object], *, via: str) -> Identity:
        """A token's subject, with the roles and units its group claims map to."""
        settings = self.config.identity.oidc
        claim = settings.groups_claim if settings is not None else "groups"
        raw = claims.get(claim, [])
        groups = [g for g in raw if isinstance(g, str)] if isinstance(raw, list) else []
        roles: set[str] = set()
        unit: str | None = None
        lead_of: list[str] = []
        for group in groups:
            grant = self._groups.get(group)
            if grant is None:
                continue
            roles |= grant.roles
            unit = unit or grant.unit
            lead_of += [u for u in grant.lead_of if u not in lead_of]
        if "lead" in roles and not lead_of and unit is not None:
            lead_of.append(unit)
        subject = str(claims.get("email") or claims.get("sub") or "unknown")
        principal = Principal("developer", subject, frozenset(roles), unit, tuple(lead_of))
        jti = claims.get("jti") or claims.get("sid")
        return Identity(
            principal, via=via, credential_id=str(jti) if jti else None, claims=dict(claims)
        )

    def cli_identity(
        self, environ: Mapping[str, str] | None = None, *, name: str | None = None
    ) -> Identity:
        """Who the CLI acts as: ``name`` (a command's ``--as``), else
        ``$ORCHESTRA_DEVELOPER``, else ``identity.cli_developer``, else the organisation's
        only developer. Never the OS user."""
        env = os.environ if environ is None else environ
        name = name or env.get(DEVELOPER_ENV) or self.config.identity.cli_developer
        if name is None and len(self._developers) == 1:
            name = next(iter(self._developers))
        if name is None:
            raise NotAuthenticated(
                "the CLI does not know which developer you are",
                hint=f"set {DEVELOPER_ENV}=<your name in organisation.developers>, or "
                "identity.cli_developer in orchestra.yaml",
            )
        if name not in self._developers:
            raise NotAuthenticated(
                f"developer {name!r} (from --as, {DEVELOPER_ENV} or identity.cli_developer) "
                "is not in organisation.developers",
                hint="use a configured developer's name",
            )
        return self.developer(name, via="cli")
