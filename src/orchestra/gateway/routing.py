"""From a requested model name to the chain of upstream models that may serve it.

A :class:`RoutingSnapshot` is built once from the configuration and never changed; a
reload builds a new one and swaps the reference, so requests in flight finish on the
snapshot they started with.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from orchestra.config.models import TIERS
from orchestra.config.names import close_matches
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import ConfigError, OrchestraError
from orchestra.gateway.errors import UnknownModel
from orchestra.gateway.formats import WireFormat

log = logging.getLogger("orchestra.gateway")
_FAMILY_RE = re.compile(r"^claude-(?:[a-z0-9.-]*?-)?(opus|sonnet|haiku)(?:-|$)")


@dataclass(frozen=True, slots=True)
class Target:
    """One concrete model on one upstream."""

    model: str
    """Key of the model in the configuration (what the ledger records as served)."""
    upstream_name: str
    """Model id sent upstream."""
    provider: str
    kind: WireFormat
    base_url: str
    api_key_env: str | None
    api_key_secret: str | None
    timeout_s: float
    connect_timeout_s: float

    @property
    def upstream_id(self) -> str:
        """What the circuit breaker is keyed by: one breaker per provider."""
        return self.provider


@dataclass(frozen=True, slots=True)
class Route:
    """The resolution of one requested model name."""

    requested: str
    tier: str | None
    """``opus``/``sonnet``/``haiku`` (or another configured tier), ``None`` for a
    concrete model requested by name."""
    chain: tuple[Target, ...]
    """Primary first, then the configured fallbacks in order."""
    rule: str | None = None
    """The rule that chose the chain: ``agent:NAME``, ``category:NAME`` or ``team:NAME``;
    ``None`` for the tier's own chain or a concrete model."""

    @property
    def primary(self) -> Target:
        return self.chain[0]


def family_tier(name: str) -> str | None:
    """The tier an Anthropic model family name belongs to, e.g. ``claude-3-5-haiku-latest``."""
    match = _FAMILY_RE.match(name.lower())
    return match.group(1) if match else None


@dataclass(frozen=True)
class RoutingSnapshot:
    """Immutable routing tables built from one configuration."""

    targets: dict[str, Target]
    aliases: dict[str, str]
    """Alias -> model key or tier name."""
    tiers: dict[str, tuple[str, ...]]
    """Tier -> (primary model, *fallbacks) from the organisation configuration."""
    team_tiers: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    agent_rules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Agent -> chain (``routing.agents``)."""
    category_rules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Category -> chain (``routing.categories``)."""
    agent_categories: dict[str, str] = field(default_factory=dict)
    """Agent -> its category, for the agents of a category that has a rule."""

    @classmethod
    def from_config(
        cls, config: OrchestraConfig, agents: Mapping[str, str] | None = None
    ) -> RoutingSnapshot:
        """Build the tables; raises :class:`orchestra.errors.ConfigError` on dangling names.

        ``agents`` maps every known agent to its category (the roster); it is needed, and
        the rules' names are checked against it, when ``routing`` has rules.
        """
        targets: dict[str, Target] = {}
        aliases: dict[str, str] = {}
        for key, model in config.models.items():
            provider = config.providers.get(model.provider)
            if provider is None:
                raise ConfigError(
                    f"model {key!r} names provider {model.provider!r}, which is not configured",
                    hint=f"add providers.{model.provider} or fix models.{key}.provider",
                    location=f"models.{key}.provider",
                )
            targets[key] = Target(
                model=key,
                upstream_name=model.upstream_name or key,
                provider=model.provider,
                kind=WireFormat(provider.kind),
                base_url=provider.base_url.rstrip("/"),
                api_key_env=provider.api_key_env,
                api_key_secret=provider.api_key_secret,
                timeout_s=provider.timeout_s,
                connect_timeout_s=provider.connect_timeout_s,
            )
            for alias in model.aliases:
                aliases[alias] = key

        def chain_of(where: str, model: str, fallbacks: list[str]) -> tuple[str, ...]:
            names = (model, *fallbacks)
            for name in names:
                if name not in targets:
                    raise ConfigError(
                        f"{where} names model {name!r}, which is not configured",
                        hint=f"add models.{name} or fix {where}",
                        location=where,
                    )
            return names

        tiers = {
            name: chain_of(f"tiers.{name}", tier.model, tier.fallbacks)
            for name, tier in config.tiers.items()
        }
        team_tiers = {
            team: {
                name: chain_of(f"teams.{team}.tiers.{name}", tier.model, tier.fallbacks)
                for name, tier in override.tiers.items()
            }
            for team, override in config.teams.items()
        }
        for alias, target in config.gateway.aliases.items():
            aliases[alias] = target
        rules = agent_rules(config, tiers, chain_of, agents or {})
        return cls(targets, aliases, tiers, team_tiers, *rules)

    def _tier_chain(
        self, tier: str, team: str | None, agent: str | None
    ) -> tuple[tuple[str, ...] | None, str | None]:
        """The chain serving ``tier`` and the rule that chose it (agent > category > team >
        the tier's own)."""
        if agent is not None and (self.agent_rules or self.category_rules):
            chain = self.agent_rules.get(agent)
            if chain is not None:
                return chain, f"agent:{agent}"
            category = self.agent_categories.get(agent)
            if category is not None:
                return self.category_rules[category], f"category:{category}"
        if team is not None:
            chain = self.team_tiers.get(team, {}).get(tier)
            if chain is not None:
                return chain, f"team:{team}"
        return self.tiers.get(tier), None

    def resolve(self, requested: str, team: str | None = None, agent: str | None = None) -> Route:
        """Resolve ``requested`` for a caller in ``team`` on behalf of ``agent`` (trusted:
        named by a run key); raises :class:`UnknownModel`. Rules apply to tier names only:
        a concrete model requested by name is served by that model."""
        name = requested
        if name not in self.targets and name in self.aliases:
            name = self.aliases[name]
        if name in self.targets:
            return Route(requested, None, (self.targets[name],))
        tier = name if (name in self.tiers or name in TIERS) else family_tier(name)
        if tier is not None:
            chain, rule = self._tier_chain(tier, team, agent)
            if chain is not None:
                return Route(requested, tier, tuple(self.targets[m] for m in chain), rule)
        raise UnknownModel(
            f"model {requested!r} is not available through this gateway",
            hint=f"use one of: {', '.join(self.names(team)) or '(none configured)'}",
            code="model_not_found",
        )

    def names(self, team: str | None = None) -> list[str]:
        """Every name a caller in ``team`` may request: tiers, aliases, models."""
        tiers = set(self.tiers) | set(self.team_tiers.get(team or "", {}))
        return [*sorted(tiers), *sorted(self.aliases), *sorted(self.targets)]


_ChainOf = Callable[[str, str, list[str]], tuple[str, ...]]


def agent_rules(
    config: OrchestraConfig,
    tiers: Mapping[str, tuple[str, ...]],
    chain_of: _ChainOf,
    agents: Mapping[str, str],
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]], dict[str, str]]:
    """``routing``'s tables: agent -> chain, category -> chain, agent -> category (for the
    agents of a category with a rule). A rule naming an unknown agent, category or route is a
    :class:`~orchestra.errors.ConfigError` naming the close matches."""
    routing = config.routing
    if not routing.agents and not routing.categories:
        return {}, {}, {}
    routes: dict[str, tuple[str, ...]] = {}
    for name, route in routing.routes.items():
        if name in TIERS or name in config.tiers:
            raise ConfigError(
                f"route {name!r} has the name of a tier",
                hint="rename the route: a rule naming it would be ambiguous",
                location=f"routing.routes.{name}",
            )
        routes[name] = chain_of(f"routing.routes.{name}", route.model, route.fallbacks)

    def chain(kind: str, who: str, target: str) -> tuple[str, ...]:
        found = routes.get(target) or tiers.get(target)
        if found is None:
            known = [*routes, *tiers]
            close = close_matches(target, known)
            raise ConfigError(
                f"routing.{kind}.{who} names unknown route {target!r}",
                hint=f"did you mean {', '.join(close)}?"
                if close
                else f"define it under routing.routes, or use one of: {', '.join(known)}",
                location=f"routing.{kind}.{who}",
            )
        return found

    categories = set(agents.values())
    for kind, rules, known in (
        ("agents", routing.agents, agents.keys()),
        ("categories", routing.categories, categories),
    ):
        for who in rules:
            if who not in known:
                close = close_matches(who, sorted(known))
                noun = "agent" if kind == "agents" else "category"
                raise ConfigError(
                    f"routing.{kind} names unknown {noun} {who!r}",
                    hint=f"did you mean {', '.join(close)}?"
                    if close
                    else f"use a{'n' if noun == 'agent' else ''} {noun} of the roster "
                    "(`orchestra agents list`)",
                    location=f"routing.{kind}.{who}",
                )
    by_agent = {who: chain("agents", who, target) for who, target in routing.agents.items()}
    by_category = {
        who: chain("categories", who, target) for who, target in routing.categories.items()
    }
    in_category = {a: c for a, c in agents.items() if c in by_category}
    return by_agent, by_category, in_category


def upstream_credential(target: Target, secrets: Mapping[str, str] | None = None) -> str | None:
    """The credential for ``target``'s provider: from its environment variable or the
    decrypted secrets; never logged. ``None`` when neither has it."""
    if target.api_key_env:
        value = os.environ.get(target.api_key_env)
        if value:
            return value
    if target.api_key_secret and secrets is not None:
        try:
            return secrets.get(target.api_key_secret)
        except OrchestraError as exc:  # a secret that cannot be decrypted
            log.error(
                "credential %r of provider %r cannot be read: %s",
                target.api_key_secret,
                target.provider,
                exc.message,
            )
    return None
