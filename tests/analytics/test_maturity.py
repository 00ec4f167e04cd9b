"""Maturity rules (golden fixture), readiness, transition plans with progress snapshots;
through the library, the CLI and the REST route."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from orchestra.analytics import (
    Figure,
    Signal,
    answer_survey,
    evaluate_readiness,
    load_maturity_rules,
    maturity_rule_versions,
    open_survey_round,
    principal_in,
    score_dimension,
)
from orchestra.cli.app import app
from orchestra.org import load_org
from orchestra.store import Database
from tests.analytics.fixtures import (
    T0,
    github,
    ledger,
    organisation,
    pull_request,
    review,
    served_app,
    sqlite_database,
)

H = timedelta(hours=1)
RULES = load_maturity_rules("1")


def _signals(**values: float | None) -> dict[str, Signal]:
    return {k: Signal(k, v, "test", (f"row:{k}",), 1) for k, v in values.items()}


def test_rules_are_versioned_data() -> None:
    assert "1" in maturity_rule_versions()
    assert set(RULES["dimensions"]) == {"technical", "process", "organisational", "cultural"}


def test_golden_dimension_scores() -> None:
    technical = score_dimension(
        "technical",
        RULES,
        _signals(
            test_coverage=82,  # >= 80 -> 4
            run_pass_rate=0.95,  # >= 0.9 -> 5
            security_findings_per_run=0.5,  # <= 0.5 -> 4
            change_failure_rate=0.174,  # <= 0.64 -> 2
        ),
    )
    assert technical.score == 3.75
    by_signal = {e.signal.name: e for e in technical.evidence}
    assert by_signal["test_coverage"].rule == ">= 80 -> 4"
    assert by_signal["change_failure_rate"].rule == "<= 0.64 -> 2"
    assert by_signal["test_coverage"].signal.rows == ("row:test_coverage",)
    # the bound is inclusive; just below it is the next level
    edge = score_dimension("technical", RULES, _signals(test_coverage=80))
    below = score_dimension("technical", RULES, _signals(test_coverage=79.9))
    assert (edge.score, below.score) == (4, 3)
    # process: only the lead time is known; the rest is listed as unknown, not scored
    process = score_dimension("process", RULES, _signals(lead_time_for_changes=30))
    assert process.score == 4
    assert [e.score for e in process.evidence] == [4, None, None, None]
    # a share of 0 is a measurement (score 1), not missing data
    zero = score_dimension("process", RULES, _signals(red_gate_share=0.0))
    assert zero.score == 1
    # no data at all: N/A
    assert score_dimension("organisational", RULES, {}).score is None
    cultural = score_dimension(
        "cultural",
        RULES,
        _signals(survey_satisfaction=3.6, survey_nps=40, ai_adoption_developers=1),
    )
    assert cultural.score == 4.0  # (3 + 4 + 5) / 3


def _figure(kpi: str, value: float) -> Figure:
    return Figure(kpi, value, "", None, (), 0)


def test_golden_readiness_for_medium() -> None:
    dims = {
        "technical": score_dimension("technical", RULES, _signals(test_coverage=82)),  # 4
        "process": score_dimension("process", RULES, _signals(lead_time_for_changes=30)),  # 4
        "organisational": score_dimension("organisational", RULES, {}),  # N/A
        "cultural": score_dimension("cultural", RULES, _signals(survey_nps=-40)),  # 1
    }
    figures = {
        "lead_time_for_changes": _figure("lead_time_for_changes", 30),  # <= 168 met
        "test_coverage": _figure("test_coverage", 82),  # >= 80 met
        "change_failure_rate": _figure("change_failure_rate", 0.174),  # <= 0.10 missed
    }
    r = evaluate_readiness("medium", RULES, dims, figures)
    met = {c.name: c.met for c in r.criteria}
    assert met["technical maturity >= 2.5"] is True
    assert met["cultural maturity >= 2.5"] is False
    assert met["organisational maturity >= 2.5"] is None
    assert met["change_failure_rate"] is False and met["test_coverage"] is True
    # 4 dimensions + 8 KPI targets of medium; met: technical, process, lead time, coverage
    assert len(r.criteria) == 12 and r.score == pytest.approx(4 / 12) and not r.ready
    assert "organisational maturity >= 2.5" in r.unknown and "time_to_restore" in r.unknown


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """SQLite: the KPIs' backends are tested in test_kpis; this checks the wiring."""
    database = sqlite_database(tmp_path)
    for n, author in enumerate(["alice", "bob", "carol"], start=1):
        github(database, "pull_request", pull_request(n, author=author))
        github(database, "pull_request_review", review(n, T0 + 2 * H))
        github(
            database,
            "pull_request",
            pull_request(n, author=author, merged=T0 + 5 * H, sha=f"{n}" * 40),
        )
    ledger(database, [("l1", "alice", None, 10**9, T0), ("l2", "bob", None, 10**9, T0)])
    tree = load_org(database)
    open_survey_round(database, principal_in(tree, "root"), "q4", "Q4")
    for who, nps in zip(["alice", "bob", "lead", "carol", "root"], [10, 9, 9, 8, 3], strict=True):
        answer_survey(database, who, "q4", satisfaction=4, quality=4, recommend=nps)
    yield database
    database.dispose()


runner = CliRunner()


def _cli(db: Database, *args: str) -> dict[str, object]:
    base = ["--as", "root", "--database", str(db.engine.url), "--period", "2026-11", "--json"]
    result = runner.invoke(app, ["insight", *args, *base])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.output)
    return out


def test_maturity_from_recorded_data(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = _cli(db, "maturity")
    dims = out["dimensions"]
    assert isinstance(dims, dict)
    assert dims["technical"]["score"] == "N/A"  # no run, no deployment: nothing measured
    process = {e["signal"]: e for e in dims["process"]["evidence"]}
    assert process["review_time"]["value"] == 2.0 and process["review_time"]["score"] == 5
    assert process["red_gate_share"]["value"] == 0.0  # three merged changes, none from a run
    assert process["red_gate_share"]["rows_total"] == 3
    assert process["lead_time_for_changes"]["unknown"]
    org = {e["signal"]: e for e in dims["organisational"]["evidence"]}
    # squads payments and search have no lead; the tribe checkout has one
    assert org["units_with_lead"]["value"] == pytest.approx(1 / 3)
    assert sorted(org["units_with_lead"]["rows"]) == [
        "unit:checkout",
        "unit:payments",
        "unit:search",
    ]
    cultural = {e["signal"]: e for e in dims["cultural"]["evidence"]}
    assert cultural["survey_nps"]["value"] == pytest.approx(40.0)  # 3 promoters, 1 detractor
    assert cultural["survey_nps"]["rows"] == ["survey:q4"]
    readiness = out["readiness"]
    assert isinstance(readiness, dict)
    assert out["stage"] == "small_team" and readiness["stage"] == "medium"
    assert "technical maturity >= 2.5" in readiness["unknown"]


def test_plan_records_progress(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = _cli(db, "plan", "medium", "--start", "2026-12-01", "--record")
    second = _cli(db, "plan", "medium", "--start", "2026-12-01", "--record")
    assert len(first["progress"]) == 1 and len(second["progress"]) == 2  # type: ignore[arg-type]
    phases = second["phases"]
    assert isinstance(phases, list)
    assert [(p["phase"], p["starts"], p["ends"]) for p in phases] == [
        ("Measure", "2026-12-01", "2026-12-22"),
        ("Structure", "2026-12-22", "2027-01-19"),
        ("Widen", "2027-01-19", "2027-03-02"),
    ]
    structure = {c["measure"]: c for c in phases[1]["exit"]}
    assert structure["signal:units_with_lead"]["met"] is False
    assert phases[1]["status"] == "open"
    gaps = second["gaps"]
    assert isinstance(gaps, list) and gaps[0]["gap"] == "missed"
    backwards = runner.invoke(
        app, ["insight", "plan", "individual", "--as", "root", "--database", str(db.engine.url)]
    )
    assert backwards.exit_code == 2 and "one of: medium, large, enterprise" in backwards.output


def test_served_maturity_and_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with served_app(tmp_path, monkeypatch, organisation, ["bob"]) as (served, keys):
        bob = keys["bob"]

        async def get(path: str, key: str | None) -> httpx.Response:
            headers = {"x-api-key": key} if key else {}
            transport = httpx.ASGITransport(app=served)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(path, headers=headers)

        assert asyncio.run(get("/api/insight/maturity", None)).status_code == 401
        squad = asyncio.run(get("/api/insight/maturity?unit=payments", bob))
        assert squad.status_code == 200
        assert squad.json()["dimensions"]["technical"]["score"] == "N/A"
        assert asyncio.run(get("/api/insight/maturity?unit=alice", bob)).status_code == 403
        assert asyncio.run(get("/api/insight/plan?target=bogus", bob)).status_code == 400
        plan = asyncio.run(get("/api/insight/plan?target=medium", bob))
        assert plan.status_code == 200 and plan.json()["progress"] == []  # GET records nothing
        roi = asyncio.run(get("/api/insight/roi?effort_share=3", bob))
        assert roi.status_code == 400
        roi = asyncio.run(get("/api/insight/roi", bob))
        assert roi.status_code == 200 and roi.json()["roi"] is None
