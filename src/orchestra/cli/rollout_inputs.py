"""Where ``orchestra rollout status`` reads its measured values: insight's KPIs from the
database (the stored organisation, the ledger, runs, git history), survey results and
``--input``."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from typing import Any

from orchestra.config import OrchestraConfig, default_database_url
from orchestra.experiments import MetricSource, kpi_metric_source


def kpi_source(
    config: OrchestraConfig, given: Mapping[str, float], *, period: str | None, who: str | None
) -> MetricSource:
    """Values given by hand first, then each phase unit's KPIs for ``period``."""
    from orchestra.analytics import InsightSettings, kpi_report, parse_period, principal_in
    from orchestra.org import load_org
    from orchestra.store import open_database

    def figures_of(unit: str | None) -> Mapping[str, Any]:
        db = open_database(default_database_url())
        try:
            name = who or os.environ.get("ORCHESTRA_DEVELOPER") or getpass.getuser()
            report = kpi_report(
                db,
                principal_in(load_org(db), name),
                unit=unit,
                period=parse_period(period),
                settings=InsightSettings.from_config(config.insight),
            )
            return report.figures
        finally:
            db.dispose()

    def survey_of(unit: str | None) -> Any:
        from orchestra.analytics import UnknownRound, list_survey_rounds, survey_results

        db = open_database(default_database_url())
        try:
            chosen = config.rollout.survey_round
            if chosen is None:
                rounds = sorted(list_survey_rounds(db), key=lambda r: r.opened_at)
                if not rounds:
                    raise UnknownRound(
                        "no survey round opened yet", hint="`orchestra survey open ROUND`"
                    )
                chosen = rounds[-1].id
            return survey_results(db, chosen, unit=unit)
        finally:
            db.dispose()

    return kpi_metric_source(figures_of, given, survey_of)
