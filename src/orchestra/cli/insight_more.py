"""CLI: orchestra insight roi | maturity | plan ..., and orchestra survey ..."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from orchestra.analytics import (
    QUESTIONS,
    Asker,
    Assumptions,
    InsightSettings,
    MaturityAssessment,
    ROIReport,
    TransitionPlan,
    answer_survey,
    assess_maturity,
    close_survey_round,
    list_survey_rounds,
    open_survey_round,
    parse_period,
    plan_transition,
    principal_in,
    roi_report,
    survey_results,
)
from orchestra.cli.insight import (
    AsOption,
    ConfigOption,
    DatabaseOption,
    JsonOption,
    PeriodOption,
    UnitOption,
    _asker,
    _open,
    insight_app,
)
from orchestra.cli.output import console, fail, print_json
from orchestra.config import load_config
from orchestra.errors import AnalyticsError, OrchestraError
from orchestra.identity import IdentityDirectory
from orchestra.org import load_org
from orchestra.store import Database


def _day(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError as exc:
        raise AnalyticsError(f"{flag} {text!r} is not a date", hint="give YYYY-MM-DD") from exc


@contextmanager
def _database(database: str | None) -> Iterator[Database]:
    """The open database; an Orchestra error raised inside becomes the CLI's failure."""
    try:
        db = _open(database)
        try:
            yield db
        finally:
            db.dispose()
    except OrchestraError as exc:
        raise fail(exc) from exc


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def _print_roi(report: ROIReport) -> None:
    out = console()
    cycle = report.cycle_time
    out.print(f"ROI · {report.unit} · adopted {report.adopted_at or 'unknown'}", markup=False)
    out.print(f"  measured AI cost: {_money(report.ai_cost)} ({report.ledger_rows} ledger rows)")
    for t in (cycle, report.lead_time):
        before = "unknown" if t.baseline_median is None else f"{t.baseline_median:.1f} h"
        after = "unknown" if t.median is None else f"{t.median:.1f} h"
        out.print(
            f"  measured {t.measure} ({t.source}): baseline {before} "
            f"({len(t.baseline_rows)} rows), since {after} ({len(t.rows)} rows)",
            markup=False,
        )
    a = report.assumptions
    out.print(
        f"  assumed: cost per developer-hour {_money(a.cost_per_developer_hour)}, "
        f"effort share {'unknown' if a.effort_share is None else f'{a.effort_share:g}'}",
        markup=False,
    )
    if report.roi is None or report.interval is None:
        out.print(f"  ROI: unknown — {report.unknown}", markup=False)
        return
    low, high = report.interval
    out.print(
        f"  value {_money(report.value)}; ROI {report.roi:.0%} (95% interval {low:.0%} .. "
        f"{high:.0%})",
        markup=False,
    )


def roi(
    unit: UnitOption = None,
    period: PeriodOption = None,
    cost_per_hour: Annotated[
        float | None,
        typer.Option("--cost-per-hour", help="Assumed loaded cost of a developer-hour, USD."),
    ] = None,
    effort_share: Annotated[
        float | None,
        typer.Option("--effort-share", help="Assumed share (0..1] of cycle time that is effort."),
    ] = None,
    adopted_on: Annotated[
        str | None,
        typer.Option("--adopted-on", help="Adoption date (default: the unit's first ledger row)."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Baseline period (default: as long, before adoption)."),
    ] = None,
    who: AsOption = None,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """ROI of the AI spend from recorded data, with its assumptions and a 95% interval."""
    with _database(database) as db:
        section = load_config(config_path).insight
        assumed = Assumptions(
            cost_per_hour if cost_per_hour is not None else section.roi.cost_per_developer_hour,
            effort_share if effort_share is not None else section.roi.effort_share,
        )
        if assumed.effort_share is not None and not 0 < assumed.effort_share <= 1:
            raise AnalyticsError("--effort-share must be in (0, 1]", hint="for example 0.5")
        if assumed.cost_per_developer_hour is not None and assumed.cost_per_developer_hour <= 0:
            raise AnalyticsError("--cost-per-hour must be positive", hint="for example 95")
        report = roi_report(
            db,
            _asker(db, who),
            unit=unit,
            period=parse_period(period),
            assumed=assumed,
            adopted_at=_day(adopted_on, "--adopted-on"),
            baseline=None if baseline is None else parse_period(baseline),
            aliases=dict(section.aliases),
        )
    if json_out:
        print_json(report.to_dict())
    else:
        _print_roi(report)


def _score_text(score: float | None) -> str:
    return "N/A" if score is None else f"{score:.2f}"


def _print_maturity(a: MaturityAssessment) -> None:
    out = console()
    out.print(f"maturity · {a.kind} {a.unit} · stage {a.stage} · rules {a.rules}", markup=False)
    for name, dim in a.dimensions.items():
        out.print(f"  {name}: {_score_text(dim.score)}", markup=False)
        for e in dim.evidence:
            value = "unknown" if e.signal.value is None else f"{e.signal.value:.3g}"
            why = f"score {e.score} ({e.rule})" if e.score else (e.signal.unknown or "unknown")
            rows = f"{e.signal.rows_total} rows"
            out.print(f"    {e.signal.name} = {value}: {why}; {rows}", markup=False)
    r = a.readiness
    if r is None:
        out.print("  readiness: already at the last stage", markup=False)
        return
    verdict = "ready" if r.ready else "not ready"
    out.print(f"  readiness for {r.stage}: {r.score:.0%} of criteria met, {verdict}", markup=False)
    for name in r.unknown:
        out.print(f"    no data: {name}", markup=False)


def _settings(config_path: Path | None) -> InsightSettings:
    return InsightSettings.from_config(load_config(config_path).insight)


def maturity(
    unit: UnitOption = None,
    period: PeriodOption = None,
    who: AsOption = None,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Maturity in four dimensions, each score with its evidence, and readiness for the
    next stage."""
    with _database(database) as db:
        settings = _settings(config_path)
        found = assess_maturity(
            db, _asker(db, who), unit=unit, period=parse_period(period), settings=settings
        )
    if json_out:
        print_json(found.to_dict())
    else:
        _print_maturity(found)


def _print_plan(plan: TransitionPlan) -> None:
    out = console()
    r = plan.readiness
    out.print(
        f"plan · {plan.unit} · {plan.current} -> {plan.target} · readiness {r.score:.0%}",
        markup=False,
    )
    for gap in plan.gaps:
        actual = "unknown" if gap["actual"] is None else f"{gap['actual']:.3g}"
        out.print(
            f"  gap ({gap['gap']}): {gap['name']} target {gap['target']:g}, {actual}", markup=False
        )
    for p in plan.phases:
        out.print(
            f"  {p.starts:%Y-%m-%d} .. {p.ends:%Y-%m-%d}  {p.stage}: {p.name} [{p.status}]",
            markup=False,
        )
        for c in p.exit:
            state = "unknown" if c.met is None else "met" if c.met else "missed"
            out.print(f"      exit {c.measure} {c.bound} {c.target:g}: {state}", markup=False)
    for snap in plan.progress:
        score = "unknown" if snap.readiness is None else f"{snap.readiness:.0%}"
        out.print(f"  progress {snap.at:%Y-%m-%d %H:%M}: {score}", markup=False)


def plan(
    target: Annotated[str, typer.Argument(help="The stage to move to (e.g. medium).")],
    unit: UnitOption = None,
    period: PeriodOption = None,
    start: Annotated[
        str | None, typer.Option("--start", help="First phase starts on (default: today).")
    ] = None,
    record: Annotated[
        bool, typer.Option("--record", help="Store this evaluation as a progress snapshot.")
    ] = False,
    who: AsOption = None,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """A transition plan to TARGET: readiness, gaps, phases, exit criteria, progress."""
    with _database(database) as db:
        settings = _settings(config_path)
        found = plan_transition(
            db,
            _asker(db, who),
            target=target,
            unit=unit,
            period=parse_period(period),
            start=_day(start, "--start"),
            record=record,
            settings=settings,
        )
    if json_out:
        print_json(found.to_dict())
    else:
        _print_plan(found)


survey_app = typer.Typer(
    help="Developer surveys (results only for groups of 5 or more).", no_args_is_help=True
)
RoundArg = Annotated[str, typer.Argument(help="The survey round (e.g. 2026-q4).")]


def _configured(db: Database, config_path: Path | None) -> Asker:
    """The configured developer (never ``--as``: these commands change records), with the
    role stored for them."""
    identity = IdentityDirectory(load_config(config_path)).cli_identity()
    return principal_in(load_org(db), identity.principal.id)


def _score(name: str) -> object:
    low, high, wording = QUESTIONS[name]
    return typer.Option(f"--{name}", min=low, max=high, help=f"{wording} ({low}-{high})")


@survey_app.command("open")
def survey_open(
    round_id: RoundArg,
    title: Annotated[str, typer.Option("--title", help="Shown on the form.")] = "Developer survey",
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Open a survey round (admins and leads), as the configured developer."""
    with _database(database) as db:
        open_survey_round(db, _configured(db, config_path), round_id, title)
    console().print(f"round {round_id} is open", markup=False)


@survey_app.command("close")
def survey_close(
    round_id: RoundArg, config_path: ConfigOption = None, database: DatabaseOption = None
) -> None:
    """Close a survey round (admins and leads), as the configured developer."""
    with _database(database) as db:
        close_survey_round(db, _configured(db, config_path), round_id)
    console().print(f"round {round_id} is closed", markup=False)


@survey_app.command("list")
def survey_list(database: DatabaseOption = None, json_out: JsonOption = False) -> None:
    """Survey rounds with how many answered."""
    with _database(database) as db:
        rounds = list_survey_rounds(db)
    if json_out:
        print_json(
            [
                {
                    "round": r.id,
                    "title": r.title,
                    "opened_at": r.opened_at.isoformat(),
                    "closed": r.closed_at is not None,
                    "respondents": r.respondents,
                }
                for r in rounds
            ]
        )
        return
    for r in rounds:
        state = "closed" if r.closed_at else "open"
        console().print(f"{r.id}  {state}  {r.respondents} answers  {r.title}", markup=False)


@survey_app.command("answer")
def survey_answer(
    round_id: RoundArg,
    satisfaction: Annotated[int, _score("satisfaction")],
    quality: Annotated[int, _score("quality")],
    recommend: Annotated[int, _score("recommend")],
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Answer a round, once, as the configured developer (``$ORCHESTRA_DEVELOPER``, else
    ``identity.cli_developer``); the answer is stored without your name."""
    with _database(database) as db:
        answer_survey(
            db,
            _configured(db, config_path).name,
            round_id,
            satisfaction=satisfaction,
            quality=quality,
            recommend=recommend,
        )
    console().print("thank you: your answer is recorded without your name", markup=False)


@survey_app.command("results")
def survey_results_cmd(
    round_id: RoundArg,
    unit: Annotated[
        str | None, typer.Option("--unit", help="Division, tribe or squad (default: all).")
    ] = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """A round's results for a unit; fewer than 5 answers read "too few answers"."""
    with _database(database) as db:
        result = survey_results(db, round_id, unit=unit)
    out = result.to_dict()
    if json_out:
        print_json(out)
    elif not result.shown:
        console().print(f"{result.kind} {result.unit}: {out['result']}", markup=False)
    else:
        console().print(
            f"{result.kind} {result.unit}: {result.respondents} answers · satisfaction "
            f"{result.satisfaction:.2f}/5 · quality {result.quality:.2f}/5 · NPS {result.nps:+.0f}",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``orchestra insight roi`` and ``orchestra survey``."""
    insight_app.command("roi")(roi)
    insight_app.command("maturity")(maturity)
    insight_app.command("plan")(plan)
    app.add_typer(survey_app, name="survey")
