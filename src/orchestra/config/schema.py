"""The root of ``orchestra.yaml``.

Each domain owns one section model; this module only composes them. Sections are
validated with Pydantic so that every error carries its location in the file.
"""

from __future__ import annotations

from pydantic import Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from orchestra.config.identity import IdentitySection
from orchestra.config.insight import InsightSection
from orchestra.config.models import ModelConfig, ProviderConfig, StrictModel, TierConfig
from orchestra.config.names import OrgNames
from orchestra.config.policy import PoliciesSection
from orchestra.config.repositories import RepositoriesSection
from orchestra.config.rollout import RolloutSection
from orchestra.config.routing import RoutingSection
from orchestra.config.sections import (
    EngineSection,
    GatewaySection,
    KnowledgeSection,
    OrganisationSection,
    RosterSection,
    TeamOverride,
)
from orchestra.config.server import ServerSection
from orchestra.config.telemetry import TelemetrySection


class OrchestraConfig(StrictModel):
    """Everything ``orchestra.yaml`` can hold."""

    version: int = 1
    organisation: OrganisationSection = Field(default_factory=OrganisationSection)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    tiers: dict[str, TierConfig] = Field(default_factory=dict)
    teams: dict[str, TeamOverride] = Field(default_factory=dict)
    """Per-team overrides (tier mapping), keyed by the team's (squad's) name."""
    routing: RoutingSection = Field(default_factory=RoutingSection)
    """Routing by agent and category (see ``docs/gateway.md``, "Routing")."""
    roster: RosterSection = Field(default_factory=RosterSection)
    gateway: GatewaySection = Field(default_factory=GatewaySection)
    engine: EngineSection = Field(default_factory=EngineSection)
    knowledge: KnowledgeSection = Field(default_factory=KnowledgeSection)
    identity: IdentitySection = Field(default_factory=IdentitySection)
    """SSO (OpenID Connect), group mapping, service-key scopes, the CLI's actor."""
    repositories: RepositoriesSection = Field(default_factory=RepositoriesSection)
    """How each repository's tests run (see ``docs/repositories.md``)."""
    policies: PoliciesSection = Field(default_factory=PoliciesSection)
    """The Cedar policy set (see ``docs/policies.md``)."""

    @model_validator(mode="after")
    def _names_exist(self, info: ValidationInfo) -> OrchestraConfig:
        """Team overrides, budgets and limits name developers and units that exist.

        ``orchestra config check`` validates with the context ``{"names": False}`` to
        keep checking the rest of a file whose names are wrong (it reports them itself).
        """
        names = OrgNames.of(self.organisation)
        if names is None or (info.context or {}).get("names") is False:
            return self
        named: list[tuple[tuple[str | int, ...], str | None]] = [
            (("teams", team), names.unknown_unit(team)) for team in self.teams
        ]
        limits = self.gateway.limits
        named += [
            (("gateway", "limits", "developers", d), names.unknown_developer(d))
            for d in limits.developers
        ]
        named += [(("gateway", "limits", "teams", t), names.unknown_unit(t)) for t in limits.teams]
        named += [
            (("gateway", "budgets", i, "subject"), names.unknown_subject(b.scope, b.subject))
            for i, b in enumerate(self.gateway.budgets)
        ]
        errors = [
            InitErrorDetails(
                type=PydanticCustomError("unknown_name", "{why}", {"why": why}),
                loc=loc,
                input=loc[-1],
            )
            for loc, why in named
            if why is not None
        ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    insight: InsightSection = Field(default_factory=InsightSection)
    """Insight's webhooks, identities and targets (see ``docs/insight.md``)."""
    rollout: RolloutSection = Field(default_factory=RolloutSection)
    """Rollout phases, cohorts and exit criteria (see ``docs/experiments.md``)."""
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    """OpenTelemetry GenAI spans of model calls (see ``docs/telemetry.md``); off by default."""
    server: ServerSection = Field(default_factory=ServerSection)
    """What the REST API may work on: its repositories by name (see ``docs/api.md``)."""
