"""Every KPI's written definition: what it measures, its formula, inputs, unit, and when
it is unknown. ``docs/insight.md`` shows this table; figures carry their definition."""

from __future__ import annotations

from dataclasses import dataclass

from orchestra.analytics.errors import UnknownKPI


@dataclass(frozen=True)
class KPIDefinition:
    """How one KPI is computed."""

    name: str
    title: str
    formula: str
    inputs: tuple[str, ...]
    """The stored rows it reads."""
    unit: str
    unknown_when: str
    lower_is_better: bool = False


_DEPLOYS = "production deployments (insight_deployments, environment in insight.production)"

DEFINITIONS: tuple[KPIDefinition, ...] = (
    KPIDefinition(
        "deployment_frequency",
        "Deployment frequency (DORA)",
        "successful production deployments finished in the period ÷ weeks in the period",
        (_DEPLOYS, "change → deployment links (for a unit: deployments carrying its changes)"),
        "deployments/week",
        "no production deployment was ever recorded for the unit",
    ),
    KPIDefinition(
        "lead_time_for_changes",
        "Lead time for changes (DORA)",
        "median over merged changes first deployed successfully in the period of "
        "(deployment finished − change opened)",
        ("insight_changes", "change → deployment links", _DEPLOYS),
        "hours",
        "no change of the unit reached production in the period",
        lower_is_better=True,
    ),
    KPIDefinition(
        "change_failure_rate",
        "Change failure rate (DORA)",
        "failed deployments ÷ deployments: finished production deployments in the period "
        "that failed (status failure/error) or that an incident is linked to, each counted "
        "once, ÷ finished production deployments in the period",
        (_DEPLOYS, "incident → deployment links"),
        "ratio",
        "no production deployment of the unit finished in the period",
        lower_is_better=True,
    ),
    KPIDefinition(
        "time_to_restore",
        "Time to restore service (DORA)",
        "median over incidents resolved in the period of (resolved − opened)",
        ("insight_incidents (kind incident)", "incident → deployment links (for a unit)"),
        "hours",
        "no incident of the unit was resolved in the period",
        lower_is_better=True,
    ),
    KPIDefinition(
        "velocity",
        "Velocity: changes merged",
        "changes (pull/merge requests) of the unit merged in the period ÷ weeks",
        ("insight_changes",),
        "changes/week",
        "no change of the unit was ever recorded",
    ),
    KPIDefinition(
        "tasks_per_week",
        "Velocity: tasks done",
        "Orchestra runs of the unit that succeeded in the period ÷ weeks",
        ("engine_runs", "gateway_ledger (who ran each run)"),
        "tasks/week",
        "no run of the unit was ever recorded",
    ),
    KPIDefinition(
        "cycle_time",
        "Cycle time",
        "median over changes merged in the period of (merged − opened)",
        ("insight_changes",),
        "hours",
        "no change of the unit was merged in the period",
        lower_is_better=True,
    ),
    KPIDefinition(
        "review_time",
        "Review time",
        "median over changes first reviewed in the period of (first review − opened)",
        ("insight_changes (pull_request_review / approved events)",),
        "hours",
        "no change of the unit had a review recorded in the period",
        lower_is_better=True,
    ),
    KPIDefinition(
        "test_coverage",
        "Test coverage of changed lines",
        "mean of the runs' changed-line coverage (coverage.py, report.json) over runs "
        "finished in the period",
        ("engine_runs", "the runs' report.json"),
        "percent",
        "no run of the unit measured coverage in the period",
    ),
    KPIDefinition(
        "bug_density",
        "Bug density",
        "bugs and incidents linked to the unit's changes merged in the period ÷ (lines "
        "added + deleted by those changes ÷ 1000)",
        (
            "insight_incidents (bug, incident)",
            "incident → change/deployment links",
            "insight_changes (additions, deletions)",
        ),
        "bugs/KLOC",
        "no merged change of the unit in the period has a known size",
        lower_is_better=True,
    ),
    KPIDefinition(
        "security_findings",
        "Security findings",
        "bandit findings in runs finished in the period + security-labelled issues opened "
        "in the period (by week in the drill-down)",
        ("engine_runs' report.json (security)", "insight_incidents (kind security)"),
        "findings",
        "no run of the unit ran the scan and no security issue was recorded in the period",
        lower_is_better=True,
    ),
    KPIDefinition(
        "cost_per_run",
        "AI cost per run",
        "ledger cost of calls made for runs in the period ÷ those runs",
        ("gateway_ledger (run_id)",),
        "USD",
        "no ledger entry of the unit in the period belongs to a run",
        lower_is_better=True,
    ),
    KPIDefinition(
        "cost_per_pr",
        "AI cost per pull request",
        "ledger cost of the runs linked to changes ÷ those changes (changes opened in the period)",
        ("gateway_ledger", "run → change links"),
        "USD",
        "no change of the unit opened in the period came from a run",
        lower_is_better=True,
    ),
    KPIDefinition(
        "cost_per_feature",
        "AI cost per feature",
        "ledger cost of the runs linked to changes merged in the period ÷ those merged "
        "changes (a feature: a merged change that came from a run)",
        ("gateway_ledger", "run → change links", "insight_changes"),
        "USD",
        "no change of the unit merged in the period came from a run",
        lower_is_better=True,
    ),
    KPIDefinition(
        "cost_per_developer_month",
        "AI cost per developer-month",
        "ledger cost of the unit in the period ÷ (developer, month) pairs with at least one call",
        ("gateway_ledger",),
        "USD",
        "the unit made no call in the period",
    ),
    KPIDefinition(
        "ai_adoption_developers",
        "AI adoption: developers",
        "developers of the unit with at least one ledger entry in the period ÷ developers "
        "of the unit",
        ("gateway_ledger", "org_developers"),
        "ratio",
        "the unit has no developers",
    ),
    KPIDefinition(
        "ai_adoption_changes",
        "AI adoption: merged changes",
        "changes of the unit merged in the period that came from a run ÷ changes merged in "
        "the period",
        ("insight_changes", "run → change links"),
        "ratio",
        "no change of the unit was merged in the period",
    ),
)
"""Every KPI, in the order the CLI and the docs list them."""

DORA_KEYS = (
    "deployment_frequency",
    "lead_time_for_changes",
    "change_failure_rate",
    "time_to_restore",
)


def definition(name: str) -> KPIDefinition:
    """The KPI called ``name``, or :class:`UnknownKPI`."""
    for item in DEFINITIONS:
        if item.name == name:
            return item
    raise UnknownKPI(
        f"no KPI is called {name!r}",
        hint="one of: " + ", ".join(d.name for d in DEFINITIONS),
    )
