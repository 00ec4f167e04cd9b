"""The experiments pages through the ASGI app over a recorded experiment (built with the
experiments package's recording functions): the list, one experiment's figures equal to
the CLI's report, "unknown" where nothing was measured, the runs' drill-down, escaping,
access and exports."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from tests.server.dashboard.experiment_seed import EVIL_ARM, EVIL_DESCRIPTION, NAME
from tests.server.dashboard.seed import Seeded
from tests.server.dashboard.test_pages import client

pytestmark = pytest.mark.anyio

PAGE = f"/dashboard/experiments/{NAME}"


def _cli_report(seeded: Seeded) -> dict[str, object]:
    folder: Path = seeded.app.fallback.state.api.base_dir  # type: ignore[union-attr]
    argv = ["experiment", "report", str(folder / "hybrid.yaml"), "--json"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.output)
    return data


async def test_the_list_shows_each_experiments_status_runs_spend_and_decision(
    seeded: Seeded,
) -> None:
    async with client(seeded, "alice") as c:
        page = await c.get("/dashboard/experiments")
        rows = (await c.get("/dashboard/experiments?format=json&table=experiments")).json()
    assert page.status_code == 200
    by_name = {r["Experiment"]: r for r in rows["rows"]}
    seeded_row = by_name[NAME]
    assert seeded_row["Status"] == "complete"
    assert (seeded_row["Runs recorded"], seeded_row["Runs planned"]) == (12, 12)
    assert seeded_row["Spent"] == pytest.approx(6 * 0.25 + 3 * 0.01)
    assert seeded_row["Budget"] == 5
    assert seeded_row["Decision"] == "hybrid: inconclusive"
    assert seeded_row["Arms"] == "all-claude, hybrid"
    waiting = by_name["not-yet"]
    assert waiting["Status"] == "not started" and waiting["Runs recorded"] == 0
    assert waiting["Spent"] == 0
    missing = by_name["missing"]
    assert missing["Status"].startswith("unreadable: cannot read experiment ./missing.yaml")
    folder = str(seeded.app.fallback.state.api.base_dir)  # type: ignore[union-attr]
    assert folder not in page.text  # files as configured, never the server's paths
    assert f'href="{PAGE}"' in page.text


async def test_an_experiments_figures_are_the_cli_reports(seeded: Seeded) -> None:
    cli = _cli_report(seeded)
    async with client(seeded, "alice") as c:
        page = await c.get(PAGE)
        arms = (await c.get(f"{PAGE}?format=json&table=arms")).json()["rows"]
        diffs = (await c.get(f"{PAGE}?format=json&table=differences")).json()["rows"]
        decided = (await c.get(f"{PAGE}?format=json&table=decisions")).json()["rows"]
        gates = (await c.get(f"{PAGE}?format=json&table=gates")).json()["rows"]
    assert page.status_code == 200
    comparison = cli["comparisons"][0]  # type: ignore[index]
    per_arm = cli["per_arm"]  # type: ignore[index]
    for row in arms:
        figures = per_arm[row["Arm"]]
        assert row["Pass rate"] == pytest.approx(figures["pass_rate"])
        assert row["Cost"] == figures["cost_usd"]
        assert row["Mean model latency (ms)"] == figures["model_latency_ms_mean"]
    assert [r["Pass rate"] for r in arms] == pytest.approx([5 / 6, 3 / 6])
    # coverage: measured on the baseline, never on the hybrid arm: unknown, not 0
    assert [r["Mean coverage"] for r in arms] == [pytest.approx(0.92), "unknown"]
    passed = next(r for r in diffs if r["Metric"] == "pass rate")
    cli_passed = comparison["differences"]["passed"]
    assert (passed["Mean difference"], passed["Low"], passed["High"]) == (
        cli_passed["mean"],
        cli_passed["low"],
        cli_passed["high"],
    )
    coverage = next(r for r in diffs if r["Metric"] == "coverage")
    assert coverage["Mean difference"] == "unknown" and coverage["Pairs"] == 0
    (row,) = decided
    assert row["McNemar p"] == comparison["mcnemar"]["p_value"]
    assert row["Pairs needed"] == comparison["pairs_needed"] > 6
    assert row["Decision"] == comparison["decision"] == "inconclusive"
    assert "6 pairs measured" in row["Why"]
    by_gate = {g["Gate"]: g for g in gates}
    assert by_gate["response_time"]["Measured"] == 0.5  # 2500 ms under 5 s, 6100 ms not
    assert by_gate["response_time"]["Status"] == "fail"
    assert by_gate["coverage"]["Status"] == "unknown"
    assert by_gate["coverage"]["Measured"] == "unknown"
    assert by_gate["satisfaction"]["Status"] == "unknown"
    # the interval chart: one row per paired metric, the unmeasured ones read "unknown"
    text = page.text
    assert text.count('class="chart interval-chart"') == 1
    assert text.count('class="interval"') == 6 and text.count('class="mark"') == 1
    assert "coverage: unknown" in text and "inconclusive" in text


async def test_runs_drill_down_by_arm_and_html_stays_text(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        page = await c.get(PAGE)
        runs = (await c.get(f"{PAGE}?format=json&table=runs")).json()["rows"]
        hybrid = (await c.get(f"{PAGE}?arm=hybrid&format=csv&table=runs")).text
        bad_arm = await c.get(f"{PAGE}?arm=nope")
        unknown = await c.get("/dashboard/experiments/nope")
    assert len(runs) == 13  # 12 of the arms and the stray line
    assert {r["Arm"] for r in runs} == {"all-claude", "hybrid", EVIL_ARM}
    parsed = list(csv.DictReader(io.StringIO(hybrid)))
    assert len(parsed) == 6 and {r["Arm"] for r in parsed} == {"hybrid"}
    assert [r["Hidden tests passed"] for r in parsed].count("yes") == 3
    assert {r["Cost"] for r in parsed} == {"0.0"}
    assert f'href="{PAGE}?arm=hybrid#t-runs"' in page.text
    assert EVIL_ARM not in page.text and EVIL_DESCRIPTION not in page.text
    assert "&lt;img src=x onerror=window.__pwned=3&gt;" in page.text
    assert "&lt;script&gt;window.__pwned=4&lt;/script&gt;" in page.text
    assert bad_arm.status_code == 400 and "no arm" in bad_arm.text
    assert unknown.status_code == 404 and "no experiment" in unknown.text


async def test_viewers_read_and_strangers_do_not(seeded: Seeded) -> None:
    async with client(seeded, None) as c:
        anonymous = await c.get(PAGE)
        listing = await c.get("/dashboard/experiments?format=json&table=experiments")
    assert anonymous.status_code == 401 and "hybrid" not in anonymous.text
    assert listing.status_code == 401
