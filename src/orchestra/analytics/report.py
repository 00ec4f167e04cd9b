"""The library's front door: a unit's KPIs for a period, checked against who asks, rated
against DORA's bands and the stage's targets; and imports from files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestra.analytics.alerts import Alert, Send, list_alerts, record_findings
from orchestra.analytics.bands import Band, rate
from orchestra.analytics.budget_burn import BudgetBurn, budget_burn
from orchestra.analytics.dataset import load_dataset
from orchestra.analytics.definitions import DEFINITIONS, definition
from orchestra.analytics.early_warnings import find_warnings
from orchestra.analytics.errors import AnalyticsError, MalformedPayload
from orchestra.analytics.kpis import FORMULAS, Figure
from orchestra.analytics.links import link_all
from orchestra.analytics.payloads import IssueLabels
from orchestra.analytics.scope import Period, Principal, Scope, check_visible, resolve_scope
from orchestra.analytics.stage_targets import TargetCheck, compare_targets, targets_for
from orchestra.analytics.webhooks import Delivery, receive
from orchestra.config import InsightSection, WarningSettings
from orchestra.org import OrgTree, load_org, stage_for_headcount
from orchestra.store import Database


@dataclass(frozen=True)
class InsightSettings:
    """What ``insight:`` in ``orchestra.yaml`` says the figures need."""

    production: frozenset[str] = frozenset({"production", "prod"})
    aliases: dict[str, str] = field(default_factory=dict)
    labels: IssueLabels = field(default_factory=IssueLabels)
    bands: str = "2023"
    stage_targets: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: WarningSettings = field(default_factory=WarningSettings)

    @classmethod
    def from_config(cls, section: InsightSection) -> InsightSettings:
        """From the configuration section."""
        labels = section.labels
        return cls(
            production=frozenset(section.production),
            aliases=dict(section.aliases),
            labels=IssueLabels(
                frozenset(x.lower() for x in labels.incident),
                frozenset(x.lower() for x in labels.bug),
                frozenset(x.lower() for x in labels.security),
            ),
            bands=section.bands,
            stage_targets={k: dict(v) for k, v in section.stage_targets.items()},
            warnings=section.warnings,
        )


@dataclass(frozen=True)
class KPIReport:
    """A unit's figures for a period."""

    scope: Scope
    period: Period
    figures: dict[str, Figure]
    bands: dict[str, Band | None]
    stage: str
    targets: list[TargetCheck]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "unit": {"kind": self.scope.kind, "name": self.scope.name},
            "period": {
                "label": self.period.label,
                "start": self.period.start.isoformat(),
                "end": self.period.end.isoformat(),
            },
            "stage": self.stage,
            "kpis": {
                name: {
                    **fig.to_dict(),
                    "band": None
                    if (b := self.bands.get(name)) is None
                    else {"version": b.version, "band": b.band, "label": b.label},
                }
                for name, fig in self.figures.items()
            },
            "targets": [t.__dict__ for t in self.targets],
        }


def _tree(db: Database) -> OrgTree:
    tree = load_org(db)
    if tree is None:
        raise AnalyticsError(
            "the organisation is not stored yet",
            hint="run `orchestra org sync` (figures are per unit of the organisation)",
        )
    return tree


def kpi_report(
    db: Database,
    principal: Principal,
    *,
    unit: str | None = None,
    period: Period,
    names: Sequence[str] | None = None,
    settings: InsightSettings | None = None,
) -> KPIReport:
    """``unit``'s KPIs (all, or ``names``) for ``period``, if ``principal`` may see them
    (a developer's own figures: that developer, their leads, admins)."""
    settings = settings or InsightSettings()
    wanted = [definition(n).name for n in names] if names else [d.name for d in DEFINITIONS]
    tree = _tree(db)
    scope = resolve_scope(tree, unit, settings.aliases)
    check_visible(principal, scope, tree)
    with db.session() as session:
        data = load_dataset(session, scope, period, settings.production)
    figures = {name: FORMULAS[name](data) for name in wanted}
    bands = {name: rate(name, fig.value, settings.bands) for name, fig in figures.items()}
    stage = tree.stage or stage_for_headcount(tree.headcount).name
    targets = {k: v for k, v in targets_for(stage, settings.stage_targets).items() if k in figures}
    return KPIReport(scope, period, figures, bands, stage, compare_targets(targets, figures))


def _payloads(data: Any) -> Iterable[Any]:
    return data if isinstance(data, list) else [data]


def import_payload_file(
    db: Database, source: str, event: str, path: Path, labels: IssueLabels | None = None
) -> list[Delivery]:
    """Take in a file of ``source`` (``github``/``gitlab``) ``event`` payloads (one object
    or a list), exactly as the webhooks would; a payload already imported is skipped (its
    delivery id is the digest of its content). Links are derived afterwards."""
    if source not in ("github", "gitlab"):
        raise MalformedPayload(f"unknown source {source!r}", hint="github or gitlab")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MalformedPayload(f"cannot read {path}: {exc}", hint="give a JSON file") from exc
    deliveries = []
    for payload in _payloads(data):
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        deliveries.append(
            receive(
                db,
                source=source,
                event=event,
                delivery_id=f"file-{digest[:32]}",
                payload=payload,
                labels=labels,
            )
        )
    link_all(db)
    return deliveries


def budget_burn_report(
    db: Database,
    principal: Principal,
    *,
    unit: str | None = None,
    settings: InsightSettings | None = None,
    now: datetime | None = None,
) -> list[BudgetBurn]:
    """The burn of every budget a check of ``unit`` (default: the organisation) watches, if
    ``principal`` may see the unit's figures (a developer's: that developer, their leads,
    admins). Each says ``unknown`` (and why) where the ledger cannot support a rate."""
    settings = settings or InsightSettings()
    tree = _tree(db)
    scope = resolve_scope(tree, unit, settings.aliases)
    check_visible(principal, scope, tree)
    w = settings.warnings
    with db.session() as session:
        return budget_burn(session, scope, now=now or datetime.now(UTC), days=w.days, alpha=w.alpha)


def check_warnings(
    db: Database,
    *,
    unit: str | None = None,
    settings: InsightSettings | None = None,
    now: datetime | None = None,
    send: Send | None = None,
) -> list[Alert]:
    """Evaluate every early-warning indicator for ``unit`` (default: the organisation),
    record the findings as alerts (de-duplicated; stale ones resolved) and escalate new or
    worsened ones through ``send``. The unit's live alerts after the check."""
    settings = settings or InsightSettings()
    now = now or datetime.now(UTC)
    scope = resolve_scope(_tree(db), unit, settings.aliases)
    w = settings.warnings
    with db.session() as session:
        findings = find_warnings(
            session,
            scope,
            now=now,
            days=w.days,
            weeks=w.weeks,
            alpha=w.alpha,
            thresholds=w.thresholds,
            production=settings.production,
        )
    ids = set(record_findings(db, scope.name, findings, now=now, send=send))
    return [a for a in list_alerts(db) if a.id in ids]
