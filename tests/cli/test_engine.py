"""The engine's commands through the Typer runner."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from orchestra.cli.app import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_dbos_thread_outlives_its_test() -> Iterator[None]:
    """Every engine a command started is stopped, with its threads, when the test ends."""
    from orchestra.engine import dbos_threads

    yield
    left = [t.name for t in dbos_threads()]
    assert not left, f"DBOS threads still running after the test: {left}"


def _text(output: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.mark.slow
def test_demo_then_runs_status_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "demo"
    monkeypatch.setenv("ORCHESTRA_HOME", str(folder / "home"))
    result = runner.invoke(app, ["demo", "--folder", str(folder)])
    assert result.exit_code == 0, result.output
    assert "The model is SCRIPTED" in result.output
    assert "ANTHROPIC_API_KEY" in result.output and "Ollama" in result.output
    assert "succeeded" in result.output
    assert "agents working now" in _text(result.output)  # the live view ran

    listed = runner.invoke(app, ["runs", "--json"])
    assert listed.exit_code == 0, listed.output
    [run] = json.loads(listed.output)
    assert run["status"] == "succeeded"

    status = runner.invoke(app, ["status", run["id"][:12], "--json"])
    assert status.exit_code == 0, status.output
    steps = json.loads(status.output)["steps"]
    assert {s["agent"] for s in steps} >= {"chief-architect", "test-writer", "python-developer"}

    report = runner.invoke(app, ["report", run["id"], "--json"])
    assert report.exit_code == 0
    data = json.loads(report.output)
    assert data["status"] == "succeeded"
    assert data["cost_source"] == "gateway ledger"
    markdown = runner.invoke(app, ["report", run["id"]])
    assert markdown.output.startswith(f"# Run {run['id']}: succeeded")

    # The plan and the blocking review finding went to the knowledge store, attributed.
    from orchestra.knowledge import KnowledgeStore

    knowledge = KnowledgeStore.open(folder / "home" / "knowledge")
    hits = knowledge.search("low stock report plan", project="sample-repo", k=5)
    kinds = {(h.entry.kind, h.entry.source.agent) for h in hits}
    assert ("decision", "chief-architect") in kinds
    assert ("bug", "code-reviewer") in kinds
    assert all(h.entry.source.run == run["id"] for h in hits)

    again = runner.invoke(app, ["resume", run["id"]])
    assert again.exit_code == 2 and "already ended" in _text(again.output)


def test_unknown_run_says_how_to_find_runs(tmp_path: Path) -> None:
    from orchestra.app import Orchestra

    with Orchestra.from_environment() as services:  # a state folder where runs are kept
        services.migrate()
    result = runner.invoke(app, ["status", "run-nope"])
    assert result.exit_code == 2
    assert "no run 'run-nope'" in _text(result.output)
    assert "orchestra runs" in _text(result.output)


def test_run_without_a_model_explains_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestra.testing.scripted import create_sample_repository

    repo = create_sample_repository(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "add a thing", "--repo", str(repo)])
    assert result.exit_code == 2
    assert "no model is configured" in _text(result.output)
    assert "orchestra demo" in _text(result.output)


def test_run_refuses_a_folder_that_is_not_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "orchestra.yaml").write_text(
        "providers: {p: {kind: anthropic, base_url: 'http://127.0.0.1:9'}}\n"
        "models: {m: {provider: p, price: {input: 1, output: 2}}}\n"
        "tiers: {haiku: {model: m}, sonnet: {model: m}, "
        "opus: {model: m}}\n"
    )
    result = runner.invoke(app, ["run", "add a thing", "--repo", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a git repository" in _text(result.output)


def _run_on_a_configured_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: str, extra_yaml: str = ""
) -> Result:
    """`orchestra run` of the sample task, the scripted model behind a fake upstream."""
    from orchestra.testing import FakeUpstream
    from orchestra.testing.scripted import SAMPLE_TASK, ScriptedModel, create_sample_repository

    repo = create_sample_repository(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    with FakeUpstream.start() as up:
        up.responder = ScriptedModel("happy")
        (tmp_path / "orchestra.yaml").write_text(
            f"providers: {{up: {{kind: anthropic, base_url: '{up.base_url}'}}}}\n"
            "models: {m: {provider: up, price: {input: 1.0, output: 2.0}}}\n"
            "tiers: {haiku: {model: m}, sonnet: {model: m}, opus: {model: m}}\n" + extra_yaml
        )
        return runner.invoke(app, ["run", SAMPLE_TASK, "--repo", str(repo), "--budget", budget])


@pytest.mark.slow
def test_run_with_a_configured_model_shows_progress_and_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_on_a_configured_model(tmp_path, monkeypatch, "2")
    text = _text(result.output)
    assert result.exit_code == 0, result.output
    assert "review-security" in text and "agents working now" in text
    assert "succeeded" in text and "report:" in text
    assert "tests (fix-1): pass — 11 passed, 0 failed" in text
    assert "changed-line coverage: 100.0% (" in text
    assert "(gateway ledger)" in text


@pytest.mark.slow
def test_run_with_land_on_success_lands_the_branch_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestra.tools.workspace import git

    land = "engine: {land_on_success: true}\n"
    result = _run_on_a_configured_model(tmp_path, monkeypatch, "2", land)
    text = _text(result.output)
    assert result.exit_code == 0, result.output
    landed = re.search(
        r"merge queue \(engine.land_on_success\):\s+entry 1 \((\S+) -> main\): "
        r"landed at ([0-9a-f]{10})",
        text,
    )
    assert landed is not None, text
    assert git(tmp_path / "repo", "rev-parse", "main").startswith(landed.group(2))


def test_a_run_stopped_by_its_budget_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed run is not the user's error: exit 1, not 2 (docs/cli.md)."""
    result = _run_on_a_configured_model(tmp_path, monkeypatch, "0.000001")
    text = _text(result.output)
    assert result.exit_code == 1, result.output
    assert "failed" in text and "budget exhausted during plan" in text
    # The reason, the CLI's hint and docs/cli.md name the same command.
    run_id = re.search(r"run (run-[0-9a-f-]+): failed", text)
    assert run_id is not None, text
    command = f"orchestra resume {run_id.group(1)} --budget USD"
    assert command in text
    again = runner.invoke(app, ["resume", run_id.group(1)])
    assert again.exit_code == 2 and "stopped by its budget" in _text(again.output)
    assert command in _text(again.output)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    assert "orchestra resume RUN --budget USD" in docs


@pytest.mark.slow
def test_cancel_from_the_cli_stops_a_run_in_another_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from orchestra.demo import scripted_stack
    from orchestra.engine.agents import RosterAgents
    from orchestra.testing.scripted import SAMPLE_TASK, create_sample_repository

    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(home, latency_s=0.3, agents=RosterAgents.load()) as stack:
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        deadline = time.monotonic() + 60
        while stack.runtime.services.runs.get(run_id).phase in {"queued", "plan"}:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result = runner.invoke(app, ["cancel", run_id[:14]])
        assert result.exit_code == 0, result.output
        row = stack.runtime.wait(run_id, timeout_s=60)
    assert row.status == "cancelled"
    assert f"run {run_id} cancelled" in _text(result.output)
    again = runner.invoke(app, ["cancel", run_id])
    assert again.exit_code == 2 and "already ended" in _text(again.output)


@pytest.mark.slow
def test_demo_runs_from_an_install_without_the_test_extras(tmp_path: Path) -> None:
    """What `make run` does on a fresh clone: the base install only (issue: no pytest)."""
    import os
    import subprocess

    from tests.engine.base_install import build_base_venv

    python = build_base_venv(tmp_path / "venv")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "ORCHESTRA_DATABASE_URL", "VIRTUAL_ENV"}
    }
    env["ORCHESTRA_HOME"] = str(tmp_path / "home")
    extras = subprocess.run([python, "-c", "import hypothesis"], env=env, capture_output=True)
    assert extras.returncode != 0, "the throwaway install must not hold the test extras"
    result = subprocess.run(
        [python, "-c", "from orchestra.cli import main; main()", "demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    text = _text(result.stdout)
    assert "succeeded" in text and "scripted model calls through the gateway" in text


def test_demo_inside_a_project_with_its_own_pytest_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` in a clone of Orchestra: the sample repository lies under a folder whose
    pyproject.toml configures pytest, which must not apply to the sample: not its ids, nor
    (as Orchestra's own does, in a base install without pytest-timeout) an option of a
    plugin that is not installed with warnings as errors, which stops pytest at start."""
    outer = tmp_path / "checkout"
    outer.mkdir()
    (outer / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "-ra"\nfilterwarnings = ["error"]\n'
        "no_such_plugin_option = 900\n"
    )
    monkeypatch.setenv("ORCHESTRA_HOME", str(outer / ".orchestra"))
    result = runner.invoke(app, ["demo", "--folder", str(outer / ".orchestra" / "demo")])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output


def test_a_run_whose_tiers_have_no_credential_is_refused_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused at start, $0 spent: not a run that fails at its first model call."""
    from orchestra.testing.scripted import create_sample_repository

    repo = create_sample_repository(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCHESTRA_TEST_PROVIDER_KEY", raising=False)
    (tmp_path / "orchestra.yaml").write_text(
        "providers: {anthropic: {kind: anthropic, base_url: 'http://127.0.0.1:9', "
        "api_key_env: ORCHESTRA_TEST_PROVIDER_KEY}}\n"
        "models: {m: {provider: anthropic, price: {input: 1.0, output: 2.0}}}\n"
        "tiers: {haiku: {model: m}, sonnet: {model: m}, opus: {model: m}}\n"
    )
    result = runner.invoke(app, ["run", "add a thing", "--repo", str(repo)])
    text = _text(result.output)
    assert result.exit_code == 2, result.output
    assert "tier(s) haiku, opus, sonnet cannot be served" in text
    assert "'anthropic'" in text and "$ORCHESTRA_TEST_PROVIDER_KEY is not set" in text
    runs = runner.invoke(app, ["runs", "--json"])
    assert runs.exit_code == 0 and json.loads(runs.stdout) == []


def test_cancelling_a_run_whose_process_is_gone_revokes_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestra.app import Orchestra

    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    monkeypatch.delenv("ORCHESTRA_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    with Orchestra.from_environment(home=home) as services:
        with services.engine(client=object(), agents=object()):  # type: ignore[arg-type]
            pass  # an engine ran here once: DBOS's records exist, its process is gone
        services.runs().create(
            id="run-gone",
            task="t",
            pipeline="test-first",
            repo_path=str(tmp_path),
            status="running",
            worker_pid=999_999_999,
            worker_host="elsewhere",
        )
        accounting = services.accounting()
        accounting.runs.open("developer", None, "run-gone", 1.0)
        accounting.close()
    result = runner.invoke(app, ["cancel", "run-gone"])
    assert result.exit_code == 0, result.output
    with Orchestra.from_environment(home=home) as services:
        accounting = services.accounting()
        keys = accounting.keys.run_keys("run-gone")
        accounting.close()
    assert len(keys) == 1 and keys[0].revoked_at is not None


def test_run_is_started_as_the_acting_developer_under_the_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`orchestra run` names its principal (the CLI's developer): a viewer cannot start one.
    (About 5-10 s: the engine and its local gateway start before the run is refused.)"""
    from orchestra.testing.scripted import create_sample_repository

    repo = create_sample_repository(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCHESTRA_DEVELOPER", raising=False)  # (it also picks a pool)
    (tmp_path / "orchestra.yaml").write_text(
        "providers: {up: {kind: anthropic, base_url: 'http://127.0.0.1:9'}}\n"
        "models: {m: {provider: up, price: {input: 1.0, output: 2.0}}}\n"
        "tiers: {haiku: {model: m}, sonnet: {model: m}, opus: {model: m}}\n"
        "organisation: {name: acme, developers: [{name: vic, role: viewer}]}\n"
        "identity: {cli_developer: vic}\n"
    )
    result = runner.invoke(app, ["run", "add a thing", "--repo", str(repo)])
    assert result.exit_code == 2, result.output
    text = _text(result.output)
    assert "developer:vic may not start_run" in text and "viewer-cannot-spend" in text
    audit = runner.invoke(app, ["audit", "list", "--json"])
    denials = [e for e in json.loads(audit.output) if e["action"] == "policy.deny"]
    assert denials[0]["actor"] == "developer:vic"
    assert denials[0]["details"]["policy_ids"] == ["viewer-cannot-spend"]
