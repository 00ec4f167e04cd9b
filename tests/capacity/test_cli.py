"""``orchestra capacity`` through the Typer runner: against the fake host behind a gateway,
with a ledger holding a peak hour and cloud spend, it prints developers per host and payback
and writes the chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from tests.capacity.conftest import SLO_S, TOKENS, Stack, seed_ledger
from tests.gateway.helpers import gateway_config_yaml

runner = CliRunner()


@pytest.fixture
def project(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "orchestra.yaml").write_text(gateway_config_yaml(stack.upstream.base_url))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", url)
    monkeypatch.setenv("ORCHESTRA_API_KEY", stack.key)
    seed_ledger(url)
    return tmp_path


def _args(stack: Stack, *more: str) -> list[str]:
    return [
        "capacity",
        "--model",
        "qwen-local",
        "--gateway-url",
        stack.gateway.base_url,
        "--concurrency",
        "1,4",
        "--duration",
        "0.3",
        "--max-tokens",
        str(TOKENS),
        "--slo-seconds",
        str(SLO_S),
        *more,
    ]


def test_capacity_json_plans_developers_per_host_and_payback(stack: Stack, project: Path) -> None:
    result = runner.invoke(app, _args(stack, "--host-price", "5000000", "--json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [level["concurrency"] for level in data["levels"]] == [1, 4]
    assert data["max_concurrency"] == 4
    # The metrics URL came from the model's provider in orchestra.yaml: queue depth is read.
    assert data["target"]["metrics_url"] == stack.upstream.base_url + "/metrics"
    assert data["levels"][1]["metrics_reads"] > 0
    assert data["peak_load"]["per_developer_requests_per_hour"] == 15
    goodput = data["goodput_rps"]
    assert data["developers_per_host"] == int(goodput / (15 / 3600))
    monthly = data["cloud_spend"]["per_developer_month_usd"]
    assert monthly == pytest.approx(300 / 10 * 365.25 / 12, rel=0.01)
    months = data["payback"]["months"]
    assert months == pytest.approx(5_000_000 / (data["developers_per_host"] * monthly), rel=0.01)
    svg = (project / "capacity.svg").read_text()
    assert svg.startswith("<svg") and "<polyline" in svg


def test_capacity_table_says_unknown_without_a_ledger(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    chart = tmp_path / "curve.svg"
    args = _args(stack, "--key", stack.key, "--chart", str(chart), "--concurrency", "2")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "max concurrency within the SLO: 2" in result.stdout
    assert "developers per host: unknown" in result.stdout
    assert "payback: unknown (no host price given" in result.stdout
    assert chart.exists() and not (tmp_path / "none.db").exists()


def test_bad_levels_and_a_wrong_key_exit_2_with_a_fix(stack: Stack, tmp_path: Path) -> None:
    bad = runner.invoke(app, _args(stack, "--key", "k", "--concurrency", "one"))
    assert bad.exit_code == 2 and "e.g. --concurrency 1,2,4,8" in bad.output
    wrong = runner.invoke(app, _args(stack, "--key", "orc_wrong", "--chart", str(tmp_path / "c")))
    assert wrong.exit_code == 2 and "HTTP 401" in wrong.output and "fix:" in wrong.output
