"""Configuration section ``insight``: webhook secrets, identities, labels, bands, targets."""

from __future__ import annotations

from pydantic import Field

from orchestra.config.models import StrictModel


class IssueLabelsConfig(StrictModel):
    """Labels that make an issue an incident, a bug or a security finding."""

    incident: list[str] = Field(default_factory=lambda: ["incident"])
    bug: list[str] = Field(default_factory=lambda: ["bug"])
    security: list[str] = Field(default_factory=lambda: ["security"])


class EscalationPath(StrictModel):
    """Where a unit's alerts go."""

    webhook: str | None = None
    """URL receiving Slack-compatible JSON (``{"text": ...}``): Slack, Mattermost, Teams
    workflows, Rocket.Chat."""
    email: list[str] = Field(default_factory=list)
    """Addresses mailed through ``insight.smtp``."""


class SMTPSettings(StrictModel):
    """The mail server alerts are sent through."""

    host: str = "localhost"
    port: int = 25
    sender: str = "orchestra@localhost"
    starttls: bool = False
    username: str | None = None
    password_secret: str | None = None
    """Name of the stored (encrypted) secret holding the password."""


class WarningSettings(StrictModel):
    """Early-warning thresholds and the trend test's parameters."""

    days: int = Field(default=14, ge=4, le=366)
    """Daily indicators look back this many days."""
    weeks: int = Field(default=8, ge=4, le=104)
    """Weekly indicators look back this many weeks."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the Mann-Kendall trend test."""
    thresholds: dict[str, float] = Field(default_factory=dict)
    """Indicator -> threshold, over the defaults (``docs/insight.md``)."""


class ROIAssumptions(StrictModel):
    """What ROI assumes rather than measures (``docs/roi.md``); unset: ROI is unknown
    unless the CLI gives them."""

    cost_per_developer_hour: float | None = Field(default=None, gt=0)
    """Loaded cost of one developer-hour, USD."""
    effort_share: float | None = Field(default=None, gt=0, le=1)
    """Share of a change's elapsed cycle time that is paid developer effort."""


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
    warnings: WarningSettings = Field(default_factory=WarningSettings)
    escalation: dict[str, EscalationPath] = Field(default_factory=dict)
    """Unit name (or the organisation's) -> where its alerts go; a unit without one
    escalates to the nearest unit above it that has one."""
    smtp: SMTPSettings = Field(default_factory=SMTPSettings)
    roi: ROIAssumptions = Field(default_factory=ROIAssumptions)
