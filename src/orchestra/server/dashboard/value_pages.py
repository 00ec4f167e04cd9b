"""The ROI page (Orchestra's formula beside the design documents', every input measured or
assumed, the interval, "unknown" with its reason) and the survey pages (the form, and
results only for groups of at least five)."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestra.analytics import (
    QUESTIONS,
    SURVEY_MIN_GROUP,
    Assumptions,
    ROIReport,
    SurveyResult,
    TimeChange,
    list_survey_rounds,
    parse_period,
    roi_report,
    survey_results,
)
from orchestra.errors import ApiError
from orchestra.server.dashboard.charts import Point, bar_chart
from orchestra.server.dashboard.context import BadQuery, PageContext, link, segment
from orchestra.server.dashboard.render import Cell, Page, Table, text_of

DESIGN_FORMULA = "(hours saved (assumed) x hourly cost (assumed) - AI cost (estimated)) / AI cost"


class UnknownSurvey(ApiError):
    """No survey round of that id."""

    status = 404


def _number(ctx: PageContext, name: str) -> float | None:
    text = ctx.param(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise BadQuery(f"{name} must be a number, not {text!r}", hint=f"e.g. ?{name}=0.5") from exc
    if value <= 0 or (name == "effort_share" and value > 1):
        raise BadQuery(f"{name} is out of range: {text}", hint="cost > 0; effort share in (0, 1]")
    return value


def _date(ctx: PageContext, name: str) -> datetime | None:
    text = ctx.param(name)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError as exc:
        raise BadQuery(f"{name} must be a date, not {text!r}", hint="YYYY-MM-DD") from exc


def _assumptions(ctx: PageContext) -> Assumptions:
    default = ctx.api.current_config.insight.roi
    per_hour, share = _number(ctx, "cost_per_hour"), _number(ctx, "effort_share")
    return Assumptions(
        per_hour if per_hour is not None else default.cost_per_developer_hour,
        share if share is not None else default.effort_share,
    )


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0%}"


def _hours(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.1f} h"


def _inputs_table(r: ROIReport, unit: str | None, period: str) -> Table:
    table = Table(
        "inputs",
        "The two formulas' inputs: what Orchestra measured and what it assumed",
        ("Input", "Design documents", "Orchestra", "Value", "Measured or assumed", "Rows"),
    )
    ledger = link("/kpis/cost_per_developer_month", unit=unit, period=period)
    c = r.cycle_time
    a = r.assumptions
    table.add(
        "AI cost",
        "an estimate of licence or token spend",
        "the unit's ledger cost in the period",
        Cell(f"${r.ai_cost:,.2f}", value=r.ai_cost),
        "measured",
        Cell(str(r.ledger_rows), ledger, r.ledger_rows),
    )
    table.add(
        "time saved per change",
        "a percentage gain, assumed",
        f"baseline median cycle time - median since adoption ({c.source})",
        Cell(_hours(c.reduction), value=c.reduction),
        "measured",
        Cell(str(len(c.baseline_rows) + len(c.rows)), "#cycle-times", len(c.rows)),
    )
    table.add(
        "baseline",
        "none, or an industry average",
        "the same-length span before adoption (first ledger entry)",
        "unknown" if r.baseline is None else r.baseline.label,
        "measured",
        "",
    )
    table.add(
        "number of changes",
        "assumed task rate",
        "changes measured in the period",
        r.changes,
        "measured",
        "",
    )
    table.add(
        "effort share",
        "implicitly 100 %",
        "share of elapsed cycle time that is paid effort",
        a.effort_share,
        "assumed (stated by the user)",
        "",
    )
    table.add(
        "cost of a developer-hour",
        "a salary figure",
        "loaded cost of a developer-hour",
        a.cost_per_developer_hour,
        "assumed (stated by the user)",
        "",
    )
    return table


def _cycle_rows(c: TimeChange, lead: TimeChange) -> Table:
    table = Table(
        "cycle-times",
        "Every measured time, before and since adoption",
        ("Row", "Measure", "Period", "Hours"),
    )
    for change, name in ((c, "cycle time"), (lead, "lead time")):
        for rows, hours, when in (
            (change.baseline_rows, change.baseline_hours, "baseline"),
            (change.rows, change.hours, "since adoption"),
        ):
            for ref, h in zip(rows, hours, strict=False):
                table.add(Cell(ref, value=ref), name, when, round(h, 2))
    return table


def roi(ctx: PageContext) -> Page:
    """ROI from recorded data beside the design documents' formula."""
    unit = ctx.param("unit")
    period = parse_period(ctx.param("period"))
    baseline = ctx.param("baseline")
    r = roi_report(
        ctx.database,
        ctx.viewer.asker,
        unit=unit,
        period=period,
        assumed=_assumptions(ctx),
        adopted_at=_date(ctx, "adopted_on"),
        baseline=parse_period(baseline) if baseline else None,
        aliases=dict(ctx.settings.aliases),
    )
    page = Page(f"ROI of {r.unit}", "roi")
    adopted = "unknown" if r.adopted_at is None else r.adopted_at.date().isoformat()
    page.notes.append(f"Period {period.label}; adopted {adopted}. See docs/roi.md.")
    interval = (
        "no interval"
        if r.interval is None
        else f"95% interval {_pct(r.interval[0])} .. {_pct(r.interval[1])}"
    )
    c = r.cycle_time
    page.sections.append(
        {
            "heading": "Return on the AI spend",
            "figure": _pct(r.roi) + ("" if r.roi is None else f" ({interval})"),
            "unknown": r.unknown,
            "how": f"Orchestra: {r.to_dict()['formula']}. Design documents: {DESIGN_FORMULA}.",
            "chart": bar_chart(
                f"Median cycle time ({c.source}), hours",
                [
                    Point("baseline", c.baseline_median, "#cycle-times"),
                    Point("since adoption", c.median, "#cycle-times"),
                ],
                unit="h",
            ),
            "caption": (
                f"Median cycle time before ({len(c.baseline_rows)} rows) and since adoption "
                f"({len(c.rows)} rows); value ${text_of(r.value)}; hours saved "
                f"{text_of(r.hours_saved)}."
            ),
            "form": {
                "method": "get",
                "action": "/dashboard/roi",
                "submit": "Recompute",
                "fields": [
                    {"name": "unit", "label": "Unit", "value": unit},
                    {"name": "period", "label": "Period", "value": ctx.param("period")},
                    {
                        "name": "cost_per_hour",
                        "label": "Cost of a developer-hour, USD (assumed)",
                        "type": "number",
                        "step": "any",
                        "value": r.assumptions.cost_per_developer_hour,
                    },
                    {
                        "name": "effort_share",
                        "label": "Effort share, 0-1 (assumed)",
                        "type": "number",
                        "step": "any",
                        "value": r.assumptions.effort_share,
                    },
                    {
                        "name": "adopted_on",
                        "label": "Adopted on (default: first ledger entry)",
                        "type": "date",
                        "value": ctx.param("adopted_on"),
                    },
                ],
            },
        }
    )
    page.tables += [_inputs_table(r, unit, period.label), _cycle_rows(c, r.lead_time)]
    return page


def surveys(ctx: PageContext) -> Page:
    """Every survey round: title, state, respondents; each links to its form and results."""
    page = Page("Surveys", "surveys")
    page.notes.append(
        f"Results are shown only for groups of at least {SURVEY_MIN_GROUP} respondents."
    )
    table = Table("rounds", "Survey rounds", ("Round", "Title", "Opened", "State", "Respondents"))
    for r in list_survey_rounds(ctx.database):
        table.add(
            Cell(r.id, link(f"/surveys/{segment(r.id)}"), r.id),
            r.title,
            r.opened_at.date().isoformat(),
            "closed" if r.closed_at is not None else "open",
            r.respondents,
        )
    page.tables.append(table)
    return page


def _result_cells(result: SurveyResult) -> list[Cell | str | float | None]:
    if result.respondents < SURVEY_MIN_GROUP:
        return [f"fewer than {SURVEY_MIN_GROUP}", *["too few answers"] * 3]
    if not result.shown:
        return [str(result.respondents), str(result.hidden), "hidden", "hidden"]
    return [str(result.respondents), result.satisfaction, result.quality, result.nps]


def survey(ctx: PageContext) -> Page:
    """One round: the form (while open) and the results of every group large enough."""
    round_id = ctx.path["round"]
    found = next((r for r in list_survey_rounds(ctx.database) if r.id == round_id), None)
    if found is None:
        raise UnknownSurvey(f"no survey round {round_id!r}", hint="see /dashboard/surveys")
    page = Page(f"Survey {found.title}", "surveys")
    if ctx.param("answered"):
        page.notes.append("Your answer is recorded, without your name.")
    tree = ctx.tree()
    groups: list[str | None] = [None]
    if tree is not None:
        groups += [u.name for u in tree.units if u.kind in ("division", "tribe", "squad")]
    results = Table(
        "results",
        f"Results by group (shown for {SURVEY_MIN_GROUP} or more respondents)",
        ("Group", "Kind", "Respondents", "Satisfaction (1-5)", "Quality (1-5)", "NPS"),
    )
    points = []
    for group in groups:
        result = survey_results(ctx.database, round_id, unit=group)
        cells = _result_cells(result)
        results.add(result.unit, result.kind, *cells)
        if result.shown:
            points.append(Point(result.unit, result.satisfaction))
    page.sections.append(
        {
            "heading": "Satisfaction by group",
            "chart": bar_chart(
                "Mean satisfaction (1-5) of the groups shown", points, unit="of 5", top=5.0
            ),
            "caption": (
                "Only groups with enough answers are drawn; a group is also hidden when the "
                "rest of a unit above it would be smaller than five."
            ),
            "how": (
                "Means of the answers (1-5); NPS: promoters (9-10) minus detractors (0-6), "
                "in percent of respondents."
            ),
        }
    )
    if found.closed_at is None:
        page.sections.append(
            {
                "heading": "Answer this survey",
                "how": (
                    "Your answer is stored without your name or time; one answer per developer."
                ),
                "form": {
                    "method": "post",
                    "action": f"/dashboard/surveys/{segment(round_id)}/answer",
                    "submit": "Send my answer",
                    "fields": [
                        {
                            "name": name,
                            "label": f"{wording} ({low}-{high})",
                            "choices": list(range(low, high + 1)),
                        }
                        for name, (low, high, wording) in QUESTIONS.items()
                    ],
                },
            }
        )
    else:
        page.notes.append("This round is closed.")
    page.tables.append(results)
    return page


__all__ = ["roi", "survey", "surveys"]
