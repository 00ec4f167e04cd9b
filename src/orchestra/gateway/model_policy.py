"""The policies on model calls: which models a caller may use, and in which regions.

Every model a route may reach (the primary and each fallback) is a Cedar request
``call_model`` on ``Model::"<key>"`` with its provider, region and tier. Models a policy
forbids are taken out of the chain, so fallbacks never leave the allowed regions; when
none is left the call is refused with 403 in the client's wire format, and the refusal
is audited with the deciding policy ids.

Decisions are cached per (key, developer, team, requested name, routing rule): a route
depends on nothing else within one gateway snapshot. The cache belongs to the snapshot and also
records the policy set's version, so a configuration reload (a new snapshot) or a
policy reload (a new version) starts from an empty cache; a full table is cleared.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestra.config.schema import OrchestraConfig
from orchestra.gateway.accounts import Caller
from orchestra.gateway.errors import Forbidden
from orchestra.gateway.routing import Route, Target
from orchestra.policy import Decision, PolicyEngine, Principal, Resource

CACHE_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class RouteVerdict:
    """The policies' answer for one route: the chain left, or the refusal."""

    route: Route | None
    """The route with only the allowed models (``None``: refused)."""
    principal: Principal
    resource: Resource
    decision: Decision
    """The primary's decision (the deciding one when refused)."""


@dataclass
class ModelPolicy:
    """Applies the policy engine to gateway routes; one per gateway snapshot."""

    engine: PolicyEngine
    config: OrchestraConfig
    _cache: dict[tuple[str, str, str | None, str, str | None, str], RouteVerdict] = field(
        default_factory=dict, init=False, repr=False
    )
    _service_scopes: dict[str, frozenset[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._service_scopes = {
            s.key_id: frozenset(s.actions) for s in self.config.identity.service_keys
        }

    @classmethod
    def from_config(cls, config: OrchestraConfig, *, base_dir: Path | None = None) -> ModelPolicy:
        """The policies ``orchestra.yaml`` names (a relative folder is under ``base_dir``,
        orchestra.yaml's folder; the working folder when ``None``)."""
        return cls(PolicyEngine.from_config(config, base_dir=base_dir), config)

    def check(self, caller: Caller, route: Route) -> RouteVerdict:
        """The verdict for ``caller`` on ``route`` (cached; see the module docstring)."""
        # The rule is part of the key: one run key's agents may be routed to different chains.
        key = (
            caller.key_id,
            caller.developer,
            caller.team,
            route.requested,
            route.rule,
            self.engine.version,
        )
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = self._decide(caller, route)
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = verdict
        return verdict

    def principal_of(self, caller: Caller) -> Principal:
        """The principal behind a key: its developer as the organisation knows them; a
        service key (``identity.service_keys``) is a ``Key`` with its scopes, inside its
        developer's unit, roles and regions (it never does more than they may)."""
        known = self.engine.principal_for_developer(caller.developer)
        if known is None:
            known = Principal(
                kind="developer",
                id=caller.developer,
                roles=frozenset({"admin" if caller.admin else "developer"}),
                unit=caller.team,
            )
        # (The developer's own unit, whatever team the key charges: a key made out to
        # another team must not step out of the policies and regions of one's unit.)
        scopes = self._service_scopes.get(caller.key_id)
        if scopes is None:
            return known
        return replace(known, kind="service", id=caller.key_id, lead_of=(), scopes=scopes)

    def region_of(self, target: Target) -> str:
        """Where a model processes data: its own region, else its provider's ("": unknown)."""
        model = self.config.models.get(target.model)
        if model is not None and model.region:
            return model.region
        provider = self.config.providers.get(target.provider)
        return (provider.region if provider is not None else None) or ""

    def _decide(self, caller: Caller, route: Route) -> RouteVerdict:
        principal = self.principal_of(caller)
        kept: list[Target] = []
        first: tuple[Resource, Decision] | None = None
        for index, target in enumerate(route.chain):
            resource = Resource(
                "Model",
                target.model,
                {
                    "provider": target.provider,
                    "region": self.region_of(target),
                    "tier": route.tier or "",
                },
                (("Provider", target.provider),) + ((("Tier", route.tier),) if route.tier else ()),
            )
            context = {
                "requested": route.requested,
                "tier": route.tier or "",
                "fallback": index > 0,
            }
            decision = self.engine.decide(principal, "call_model", resource, context)
            if first is None:
                first = (resource, decision)
            if decision.allowed:
                kept.append(target)
        assert first is not None  # a route always has a primary
        resource, decision = first
        allowed = replace(route, chain=tuple(kept)) if kept else None
        return RouteVerdict(allowed, principal, resource, decision)

    def refusal(self, verdict: RouteVerdict) -> Forbidden:
        """The 403 for a refused route, naming the policies and, for residency, the regions."""
        decision = verdict.decision
        region = verdict.resource.attrs.get("region") or "unknown"
        where = ""
        if verdict.principal.regions and region not in verdict.principal.regions:
            allowed = ", ".join(r for r in verdict.principal.regions if r) or "none"
            where = f" (model region {region}; allowed regions: {allowed})"
        return Forbidden(
            f"policy refuses {verdict.principal.actor} model "
            f"{verdict.resource.id!r}{where}: refused by {decision.refused_by}",
            hint="use a model your unit's policies allow (`orchestra policy test` shows why), "
            "or ask an admin to change the policies",
            code="policy_denied",
        )
