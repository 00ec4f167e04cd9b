"""The root of ``orchestra.yaml``.

Each domain owns one section model; this module only composes them. Sections are
validated with Pydantic so that every error carries its location in the file.
"""

from __future__ import annotations

from pydantic import Field

from orchestra.config.identity import IdentitySection
from orchestra.config.models import ModelConfig, ProviderConfig, StrictModel, TierConfig
from orchestra.config.repositories import RepositoriesSection
from orchestra.config.sections import (
    EngineSection,
    GatewaySection,
    KnowledgeSection,
    OrganisationSection,
    RosterSection,
    TeamOverride,
)


class OrchestraConfig(StrictModel):
    """Everything ``orchestra.yaml`` can hold."""

    version: int = 1
    organisation: OrganisationSection = Field(default_factory=OrganisationSection)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    tiers: dict[str, TierConfig] = Field(default_factory=dict)
    teams: dict[str, TeamOverride] = Field(default_factory=dict)
    """Per-team overrides (tier mapping), keyed by the team's (squad's) name."""
    roster: RosterSection = Field(default_factory=RosterSection)
    gateway: GatewaySection = Field(default_factory=GatewaySection)
    engine: EngineSection = Field(default_factory=EngineSection)
    knowledge: KnowledgeSection = Field(default_factory=KnowledgeSection)
    identity: IdentitySection = Field(default_factory=IdentitySection)
    """SSO (OpenID Connect), group mapping, service-key scopes, the CLI's actor."""
    repositories: RepositoriesSection = Field(default_factory=RepositoriesSection)
    """How each repository's tests run (see ``docs/repositories.md``)."""
