"""``orchestra rollout status``: each phase's exit criteria with measured values; an
unknown value blocks a go."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app

CONFIG = """
rollout:
  experiments: {hybrid: hybrid.report.json}
  baselines: {tasks_per_week: 4}
  phases:
    - name: pilot
      kind: pilot
      developers: [ann, bob]
      size: 10
      criteria:
        - {metric: "experiment:hybrid", equals: ship}
        - {metric: satisfaction, min: 0.8}
        - {metric: tasks_per_week, min: 1.0, relative_to_baseline: true}
    - name: department
      kind: department
      size: 50
      criteria:
        - {metric: cost_per_developer_month, max: 400}
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("ORCHESTRA_DATABASE_URL", raising=False)
    (tmp_path / "orchestra.yaml").write_text(CONFIG)
    report = {"decisions": {"hybrid": "ship"}}
    (tmp_path / "hybrid.report.json").write_text(json.dumps(report))
    return tmp_path / "orchestra.yaml"


def _status(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["rollout", "status", "--config", str(config), *args])
    return result.exit_code, result.output


def test_measured_values_make_a_go_and_unknown_ones_block(setup: Path) -> None:
    code, out = _status(
        setup, "--input", "satisfaction=0.86", "--input", "tasks_per_week=5", "--json"
    )
    assert code == 0, out
    pilot, department = json.loads(out)["phases"]
    assert pilot["go"] is True and pilot["cohort"] == 2 and pilot["size"] == 10
    values = {c["metric"]: c["value"] for c in pilot["criteria"]}
    assert values == {"experiment:hybrid": "ship", "satisfaction": 0.86, "tasks_per_week": 5.0}
    # No organisation stored: insight has no figure, so the cost is unknown, not $0.
    (cost,) = department["criteria"]
    assert (cost["value"], cost["met"], department["go"]) == (None, None, False)
    assert "insight unavailable" in cost["source"]
    assert department["blockers"][0].startswith("cost_per_developer_month: unknown")


def test_a_phase_short_of_its_criteria_is_no_go_and_exits_one(setup: Path) -> None:
    code, out = _status(setup, "--input", "satisfaction=0.7", "--phase", "pilot")
    assert code == 1
    assert "## pilot (pilot): **NO-GO**" in out
    assert "| satisfaction | >= 0.8 | 0.7 | no | given, not measured (--input) |" in out
    assert "tasks_per_week: unknown" in out  # neither given nor in insight
    code, _ = _status(
        setup, "--input", "satisfaction=0.9", "--input", "tasks_per_week=4", "--phase", "pilot"
    )
    assert code == 0


def test_an_experiment_not_shipping_blocks(setup: Path) -> None:
    (setup.parent / "hybrid.report.json").write_text(
        json.dumps({"decisions": {"hybrid": "inconclusive"}})
    )
    code, out = _status(setup, "--input", "satisfaction=0.9", "--input", "tasks_per_week=9")
    assert code == 0
    assert "| experiment:hybrid | = ship | inconclusive | no |" in out


def test_bad_input_is_a_users_error(setup: Path) -> None:
    code, out = _status(setup, "--input", "satisfaction")
    assert code == 2 and "NAME=NUMBER" in out
    code, out = _status(setup, "--phase", "nope")
    assert code == 2 and "no rollout phase named 'nope'" in out


def test_cost_per_developer_is_read_from_the_ledger(
    setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from tests.analytics.fixtures import ledger, sqlite_database

    db = sqlite_database(tmp_path)
    usd = 1_000_000_000
    at = datetime(2026, 11, 3, tzinfo=UTC)
    ledger(db, [("l1", "alice", "r1", 250 * usd, at), ("l2", "alice", None, 200 * usd, at)])
    db.dispose()
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", f"sqlite:///{tmp_path / 'insight.db'}")
    setup.write_text(
        CONFIG.replace("      kind: department\n", "      kind: department\n      unit: payments\n")
    )
    code, out = _status(setup, "--as", "root", "--period", "2026-11", "--json")
    assert code == 0, out
    (cost,) = json.loads(out)["phases"][1]["criteria"]
    assert cost["value"] == pytest.approx(450.0) and cost["met"] is False
    assert cost["source"] == "insight KPI cost_per_developer_month (payments)"


SURVEYED = """
rollout:
  phases:
    - name: pilot
      kind: pilot
      unit: payments
      criteria:
        - {metric: satisfaction, min: 0.8}
"""


def test_satisfaction_is_read_from_the_cohorts_survey_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestra.analytics import answer_survey, open_survey_round, principal_in
    from orchestra.config import OrganisationSection
    from orchestra.org import build_org_tree, load_org, sync_org
    from orchestra.store import open_database
    from tests.analytics.test_surveys import ORGANISATION, PAYMENTS

    url = f"sqlite:///{tmp_path / 'survey.db'}"
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", url)
    config = tmp_path / "orchestra.yaml"
    config.write_text(SURVEYED)
    db = open_database(url)
    try:
        code, out = _status(config, "--json")
        (check,) = json.loads(out)["phases"][0]["criteria"]
        assert check["met"] is None and "survey unavailable" in check["source"], check

        sync_org(db, build_org_tree(OrganisationSection.model_validate(ORGANISATION)))
        open_survey_round(db, principal_in(load_org(db), "lead"), "2026-q4", "Q4")
        for who, score in zip(PAYMENTS[:4], (5, 4, 4, 3), strict=True):
            answer_survey(db, who, "2026-q4", satisfaction=score, quality=3, recommend=8)
        code, out = _status(config, "--phase", "pilot")
        assert code == 1  # four answers: too few to show, so unknown, so no go
        assert "| satisfaction | >= 0.8 | unknown | unknown |" in out
        assert "survey 2026-q4 (squad payments): fewer than 5 answers" in out

        answer_survey(db, PAYMENTS[4], "2026-q4", satisfaction=5, quality=3, recommend=8)
        code, out = _status(config, "--phase", "pilot", "--json")
        assert code == 0, out
        (check,) = json.loads(out)["phases"][0]["criteria"]
        assert check["value"] == pytest.approx(0.8) and check["met"] is True
        assert check["source"] == "survey 2026-q4 (squad payments): 5 answers, share satisfied"

        # --input overrides the measured value, and the report says it was not measured.
        code, out = _status(config, "--input", "satisfaction=0.5", "--json")
        (check,) = json.loads(out)["phases"][0]["criteria"]
        assert (check["value"], check["met"]) == (0.5, False)
        assert check["source"] == "given, not measured (--input)"
    finally:
        db.dispose()
