"""The maturity and transition-plan pages: four dimensions scored from measured signals,
each score with its evidence and rows, readiness for the next stage, and the plan to a
target stage with its phases, timeline, exit criteria and progress over time."""

from __future__ import annotations

from orchestra.analytics import (
    DEFINITIONS,
    DimensionScore,
    Evidence,
    MaturityAssessment,
    Readiness,
    Signal,
    TransitionPlan,
    assess_maturity,
    next_stage,
    parse_period,
    plan_transition,
    row_records,
)
from orchestra.errors import ApiError
from orchestra.server.dashboard.charts import Point, bar_chart, timeline_chart
from orchestra.server.dashboard.context import BadQuery, PageContext, link, segment
from orchestra.server.dashboard.render import Cell, Page, Table, row_tables, text_of

KPI_NAMES = frozenset(d.name for d in DEFINITIONS)


class UnknownSignal(ApiError):
    """The maturity rules read no signal of that name."""

    status = 404


def _assess(ctx: PageContext) -> MaturityAssessment:
    return assess_maturity(
        ctx.database,
        ctx.viewer.asker,
        unit=ctx.param("unit"),
        period=parse_period(ctx.param("period")),
        settings=ctx.settings,
    )


def signal_href(name: str, unit: str | None, period: str) -> str:
    """Where a signal's rows are: a KPI's rows page, else the signal's own page."""
    if name in KPI_NAMES:
        return link(f"/kpis/{segment(name)}", unit=unit, period=period)
    return link(f"/maturity/{segment(name)}", unit=unit, period=period)


def _score(value: float | None) -> str:
    return "N/A" if value is None else f"{value:g} / 5"


def _dimension_section(dim: DimensionScore, unit: str | None, period: str) -> dict[str, object]:
    points = [
        Point(
            e.signal.name,
            None if e.score is None else float(e.score),
            signal_href(e.signal.name, unit, period),
        )
        for e in dim.evidence
    ]
    unknown = None if dim.score is not None else "no signal of this dimension has data"
    return {
        "heading": f"{dim.dimension.capitalize()} maturity",
        "figure": _score(dim.score),
        "unknown": unknown,
        "chart": bar_chart(f"{dim.dimension} signals' scores (1-5)", points, unit="of 5", top=5.0),
        "caption": (
            "Each bar is one signal's score by the rules; a question mark is a signal "
            "without data (not scored). Each bar links to the signal's rows."
        ),
        "how": (
            "The weighted mean of the scores of the signals with data; a dimension with no "
            "signal known is N/A."
        ),
    }


def _evidence_table(assessment: MaturityAssessment, unit: str | None, period: str) -> Table:
    table = Table(
        "evidence",
        "Every score's evidence: each signal's measured value and the rule that scored it",
        ("Signal", "Dimension", "Value", "Score", "Rule", "Weight", "How", "Rows"),
    )
    for dim in assessment.dimensions.values():
        for e in dim.evidence:
            href = signal_href(e.signal.name, unit, period)
            table.add(
                Cell(e.signal.name, href, e.signal.name),
                dim.dimension,
                Cell(_value(e), value=e.signal.value),
                Cell(text_of(e.score), value=e.score),
                e.rule or "not scored",
                e.weight,
                e.signal.how,
                Cell(str(e.signal.rows_total), href, e.signal.rows_total),
            )
    return table


def _value(e: Evidence) -> str:
    if e.signal.value is None:
        return f"unknown: {e.signal.unknown}" if e.signal.unknown else "unknown"
    return text_of(round(e.signal.value, 3))


def readiness_table(readiness: Readiness, table_id: str, unit: str | None, period: str) -> Table:
    """The criteria for entering a stage beside what was measured."""
    table = Table(
        table_id,
        f"Readiness for the {readiness.stage} stage: {readiness.score:.0%} of criteria met",
        ("Criterion", "Kind", "Target", "Actual", "Met"),
    )
    for c in readiness.criteria:
        href = (
            link(f"/kpis/{segment(c.name)}", unit=unit, period=period)
            if c.kind == "kpi"
            else link("/maturity", unit=unit, period=period)
        )
        met = "unknown" if c.met is None else ("yes" if c.met else "no")
        table.add(Cell(c.name, href, c.name), c.kind, c.target, c.actual, met)
    return table


def maturity(ctx: PageContext) -> Page:
    """A unit's maturity in four dimensions, every score with its evidence, and readiness
    for the next stage."""
    found = _assess(ctx)
    unit, period = ctx.param("unit"), found.period.label
    page = Page(f"Maturity of {found.unit}", "maturity")
    page.notes.append(
        f"{found.kind.capitalize()} {found.unit}; stage {found.stage}; period {period}; "
        f"rules version {found.rules} (src/orchestra/analytics/rules/maturity-{found.rules}.json)."
    )
    page.sections += [_dimension_section(d, unit, period) for d in found.dimensions.values()]
    page.tables.append(_evidence_table(found, unit, period))
    if found.readiness is None:
        page.notes.append(
            f"{found.stage} is the last stage: there is no next stage to be ready for."
        )
    else:
        r = found.readiness
        page.sections.append(
            {
                "heading": f"Readiness for the {r.stage} stage",
                "figure": f"{r.score:.0%} of criteria met" + (" (ready)" if r.ready else ""),
                "unknown": ("not measured: " + ", ".join(r.unknown)) if r.unknown else None,
                "how": (
                    "Each dimension's least score for the stage (the rules' readiness) and the "
                    "stage's KPI targets; a criterion without data counts as not met."
                ),
                "links": [
                    (f"The plan to reach {r.stage}", link("/plan", unit=unit, target=r.stage))
                ],
            }
        )
        page.tables.append(readiness_table(r, "readiness", unit, period))
    return page


def _find_signal(assessment: MaturityAssessment, name: str) -> tuple[str, Evidence]:
    for dim in assessment.dimensions.values():
        for e in dim.evidence:
            if e.signal.name == name:
                return dim.dimension, e
    known = sorted(e.signal.name for d in assessment.dimensions.values() for e in d.evidence)
    raise UnknownSignal(f"no maturity signal {name!r}", hint="one of: " + ", ".join(known))


def signal_rows(ctx: PageContext) -> Page:
    """One signal: its value, how it was computed, its score and the rows it came from."""
    found = _assess(ctx)
    dimension, e = _find_signal(found, ctx.path["signal"])
    signal: Signal = e.signal
    page = Page(f"{signal.name} of {found.unit}: rows", "maturity")
    page.sections.append(
        {
            "heading": f"{signal.name} ({dimension}), {found.period.label}",
            "figure": _value(e),
            "unknown": signal.unknown if signal.value is None else None,
            "how": signal.how,
            "links": [
                ("Back to the maturity page", link("/maturity", unit=ctx.param("unit"))),
            ],
        }
    )
    page.notes.append(
        f"Score {text_of(e.score)} ({e.rule or 'not scored'}); {signal.rows_total} rows."
    )
    if signal.rows_total > len(signal.rows):
        page.notes.append(f"Showing {len(signal.rows)} of {signal.rows_total} rows.")
    page.tables += row_tables(row_records(ctx.database, signal.rows))
    return page


def _plan(ctx: PageContext) -> TransitionPlan:
    target = ctx.param("target")
    if target is None:
        current = _assess(ctx)
        target = next_stage(current.stage)
        if target is None:
            raise BadQuery(f"{current.stage} is the last stage", hint="there is nothing to plan")
    return plan_transition(
        ctx.database,
        ctx.viewer.asker,
        target=target,
        unit=ctx.param("unit"),
        period=parse_period(ctx.param("period")),
        settings=ctx.settings,
    )


def _measure_href(measure: str, unit: str | None, period: str) -> str:
    kind, _, name = measure.partition(":")
    if kind == "kpi":
        return link(f"/kpis/{segment(name)}", unit=unit, period=period)
    if kind == "signal":
        return signal_href(name, unit, period)
    return link("/maturity", unit=unit, period=period)


def plan(ctx: PageContext) -> Page:
    """The plan from the unit's stage to a target stage: readiness, gaps, phases on a
    timeline, exit criteria against the measures, and the recorded progress."""
    found = _plan(ctx)
    unit, period = ctx.param("unit"), found.assessment.period.label
    page = Page(f"Transition plan of {found.unit}: {found.current} to {found.target}", "plan")
    page.notes.append(
        f"Measures of {period}. Phases from src/orchestra/analytics/rules/roadmaps-1.json; "
        "the page never records a snapshot (`orchestra insight plan --record` does)."
    )
    r = found.readiness
    page.sections.append(
        {
            "heading": f"Readiness for {found.target}",
            "figure": f"{r.score:.0%} of criteria met",
            "unknown": ("not measured: " + ", ".join(r.unknown)) if r.unknown else None,
            "how": "criteria met ÷ criteria; a criterion without data counts as not met",
            "chart": timeline_chart(
                "Phases on the timeline",
                [(f"{p.stage}: {p.name}", p.starts, p.ends, p.status) for p in found.phases],
            ),
            "caption": "Each phase from its start to its end; its status from its exit criteria.",
        }
    )
    if found.progress:
        points = [
            Point(s.at.strftime("%m-%d"), None if s.readiness is None else 100 * s.readiness)
            for s in found.progress
        ]
        page.sections.append(
            {
                "heading": "Progress over time",
                "chart": bar_chart(
                    "Readiness at each recorded evaluation (%)", points, unit="%", top=100.0
                ),
                "caption": "One bar per recorded evaluation (insight_plan_snapshots).",
            }
        )
    else:
        page.notes.append("No evaluation of this plan was recorded yet: progress is unknown.")
    gaps = Table(
        "gaps",
        "Critical gaps: criteria missed, then without data",
        ("Criterion", "Gap", "Target", "Actual"),
    )
    for gap in found.gaps:
        gaps.add(gap["name"], gap["gap"], gap["target"], gap["actual"])
    phases = Table(
        "phases",
        "Phases and activities",
        ("Phase", "Stage", "Starts", "Ends", "Status", "Activities"),
    )
    exits = Table(
        "exit",
        "Exit criteria against the measures",
        ("Measure", "Phase", "Bound", "Target", "Actual", "Met"),
    )
    for p in found.phases:
        phases.add(
            p.name,
            p.stage,
            p.starts.date().isoformat(),
            p.ends.date().isoformat(),
            p.status,
            "; ".join(p.activities),
        )
        for c in p.exit:
            met = "unknown" if c.met is None else ("yes" if c.met else "no")
            bound = "at least" if c.bound == "min" else "at most"
            exits.add(
                Cell(c.measure, _measure_href(c.measure, unit, period), c.measure),
                p.name,
                bound,
                c.target,
                c.actual,
                met,
            )
    progress = Table(
        "progress", "Recorded evaluations", ("At", "Readiness", "Criteria met", "Known", "Total")
    )
    for s in found.progress:
        progress.add(
            s.at.isoformat(timespec="minutes"),
            s.readiness,
            s.criteria_met,
            s.criteria_known,
            s.criteria_total,
        )
    page.tables += [readiness_table(r, "readiness", unit, period), gaps, phases, exits, progress]
    return page


__all__ = ["maturity", "plan", "signal_rows"]
