"""Configuration section ``insight``: webhook secrets, identities, labels, bands, targets."""

from __future__ import annotations

from pydantic import Field

from orchestra.config.models import StrictModel


class IssueLabelsConfig(StrictModel):
    """Labels that make an issue an incident, a bug or a security finding."""

    incident: list[str] = Field(default_factory=lambda: ["incident"])
    bug: list[str] = Field(default_factory=lambda: ["bug"])
    security: list[str] = Field(default_factory=lambda: ["security"])


class InsightSection(StrictModel):
    """Where insight's data comes from and what its figures are compared with."""

    github_secret: str | None = None
    """Name of the stored (encrypted) secret GitHub signs webhooks with
    (``orchestra secrets set NAME``); ``None``: the GitHub route answers 404."""
    gitlab_secret: str | None = None
    """Name of the stored secret token GitLab sends; ``None``: the GitLab route answers 404."""
    production: list[str] = Field(default_factory=lambda: ["production", "prod"])
    """Environment names that count as production for DORA."""
    aliases: dict[str, str] = Field(default_factory=dict)
    """GitHub/GitLab login (or e-mail) -> developer name."""
    labels: IssueLabelsConfig = Field(default_factory=IssueLabelsConfig)
    bands: str = "2023"
    """The DORA report whose bands figures are rated against (``2021``, ``2023``)."""
    stage_targets: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per stage, KPI -> target, overriding the defaults (``docs/insight.md``)."""
