"""`orchestra registry ...`, `claude-code install --developer` and the engine's pool, through
the Typer runner on a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.app import Orchestra
from orchestra.cli.app import app
from orchestra.registry import AgentNotInPool
from tests.org.test_tree import ORG
from tests.roster.agentfiles import agent_text, prompt_for

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database with the test organisation stored and the built-in agents seeded; the
    policies are those of that organisation's orchestra.yaml (the shipped ones)."""
    config = tmp_path / "orchestra.yaml"
    config.write_text(ORG)
    monkeypatch.setenv("ORCHESTRA_CONFIG", str(config))
    url = f"sqlite:///{tmp_path / 'orchestra.db'}"
    synced = runner.invoke(
        app,
        ["org", "sync", "--config", str(config), "--database", url],
        env={"ORCHESTRA_DEVELOPER": "dee"},  # org sync is an admin's change
    )
    assert synced.exit_code == 0, synced.output
    seeded = runner.invoke(app, ["registry", "seed", "--database", url])
    assert seeded.exit_code == 0, seeded.output
    assert "seeded: 119 published, 0 unchanged" in seeded.output
    return url


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["registry", *args])
    return result.exit_code, result.output


def test_publish_review_show_and_diff(db: str, tmp_path: Path) -> None:
    file = tmp_path / "python-developer.md"
    file.write_text(
        agent_text("python-developer", tier="sonnet", fallback="opus", body=prompt_for("v2"))
    )
    code, out = _run("publish", str(file), "--as", "ben", "--database", db)
    assert code == 0, out
    assert "published python-developer@v2 (pending review" in out

    code, out = _run("approve", "python-developer", "2", "--as", "ben", "--database", db)
    assert code == 2
    assert 'developer:ben may not approve_agent on Agent::"python-developer"' in out
    assert "refused by registry-review-needs-lead-or-admin" in out
    audit = runner.invoke(app, ["audit", "list", "--database", db, "--json"])
    entries = json.loads(audit.output)
    denials = [e for e in entries if e["action"] == "policy.deny"]
    assert denials[0]["actor"] == "developer:ben"
    assert denials[0]["details"]["policy_ids"] == ["registry-review-needs-lead-or-admin"]

    code, out = _run("approve", "python-developer", "v2", "--as", "ana", "--database", db)
    assert code == 0, out
    assert "python-developer@v2 approved: published by ben" in out and "reviewed by ana" in out

    shown = json.loads(_run("show", "python-developer", "--database", db, "--json")[1])
    assert shown["served"] == 2
    assert [(v["version"], v["publisher"]) for v in shown["versions"]] == [
        (1, "orchestra"),
        (2, "ben"),
    ]
    code, out = _run("diff", "python-developer", "v1", "v2", "--database", db)
    assert code == 0
    assert out.startswith("--- python-developer@v1 (orchestra, ")
    assert "+tier: sonnet" in out


def test_list_search_deprecate_and_yank(db: str) -> None:
    listed = json.loads(_run("list", "--database", db, "--json")[1])
    assert len(listed) == 119
    hits = json.loads(_run("search", "kubernetes", "--database", db, "--json")[1])
    assert [h["agent"] for h in hits] == ["kubernetes-specialist"]
    code, out = _run("search", "", "--category", "nonexistent", "--database", db)
    assert code == 0 and "0 found" in out

    code, out = _run(
        "deprecate", "adr-writer", "1", "--as", "dee", "--note", "old", "--database", db
    )
    assert code == 0, out
    result = runner.invoke(app, ["registry", "show", "adr-writer", "--database", db])
    assert "warning: adr-writer@v1 is deprecated: old" in result.output
    assert _run("yank", "adr-writer", "1", "--as", "dee", "--database", db)[0] == 0
    assert len(json.loads(_run("list", "--database", db, "--json")[1])) == 118
    assert len(json.loads(_run("list", "--all", "--database", db, "--json")[1])) == 119


def test_bad_input_exits_2_with_a_fix(db: str, tmp_path: Path) -> None:
    code, out = _run("show", "pyhton-developer", "--database", db)
    assert code == 2 and "did you mean python-developer" in out
    code, out = _run("diff", "python-developer", "1", "9", "--database", db)
    assert code == 2 and "has no version v9" in out and "its versions are v1" in out
    bad = tmp_path / "bad.md"
    bad.write_text(agent_text("python-developer", tier="giant"))
    code, out = _run("publish", str(bad), "--as", "ana", "--database", db)
    assert code == 2 and f"{bad}:" in out and "invalid" in out
    code, out = _run("publish", str(bad), "--database", db)
    assert code == 2 and "does not know which developer you are" in out
    code, out = _run("approve", "python-developer", "1", "--as", "zed", "--database", db)
    assert code == 2 and "developer 'zed' (from --as" in out
    code, out = _run("approve", "python-developer", "1", "--as", "ana", "--database", db)
    assert code == 2 and "is approved; only a version that is pending" in out


def test_pools_drive_claude_code_install_and_the_engine(db: str, tmp_path: Path) -> None:
    code, out = _run(
        "pool",
        "set",
        "payments",
        "python-developer",
        "python-reviewer",
        "--as",
        "dee",
        "--database",
        db,
    )
    assert code == 0 and "pool of payments: 2 agents" in out
    view = json.loads(_run("pool", "show", "--developer", "ben", "--database", db, "--json")[1])
    assert view["unit"] == "checkout" and view["agents"] == ["python-developer", "python-reviewer"]
    code, out = _run("pool", "set", "checkout", "go-developer", "--as", "ana", "--database", db)
    assert code == 2 and "does not allow go-developer" in out

    project = tmp_path / "project"
    project.mkdir()
    installed = runner.invoke(
        app,
        [
            "claude-code",
            "install",
            str(project),
            "--developer",
            "ben",
            "--database",
            db,
            "--base-url",
            "http://gw",
        ],
    )
    assert installed.exit_code == 0, installed.output
    written = sorted(p.name for p in (project / ".claude" / "agents").glob("*.md"))
    assert written == ["python-developer.md", "python-reviewer.md"]

    code, out = _run("deprecate", "python-reviewer", "1", "--as", "dee", "--database", db)
    assert code == 0, out
    said: list[str] = []
    with Orchestra.from_environment(database_url=db, home=tmp_path / "home") as services:
        agents = services.pool_agents("ben", said.append)
        assert said == ["warning: python-reviewer@v1 is deprecated"]
        assert agents.get("python-reviewer").name == "python-reviewer"  # still served
        assert agents.get("python-developer").name == "python-developer"
        with pytest.raises(AgentNotInPool, match="pool of unit 'checkout'"):
            agents.get("go-developer")
        assert agents.pick_for_files(["src/app.py"]) == "python-developer"


def test_run_developer_takes_the_pool_before_any_model(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", db)
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    unknown = runner.invoke(app, ["run", "add a flag", "--repo", str(repo), "--developer", "bne"])
    assert unknown.exit_code == 2
    assert "no developer named 'bne'" in unknown.output and "did you mean ben" in unknown.output
    known = runner.invoke(app, ["run", "add a flag", "--repo", str(repo), "--developer", "ben"])
    assert known.exit_code == 2 and "no model is configured" in known.output  # pool resolved


def test_the_registry_acts_as_the_clis_configured_developer(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --as: $ORCHESTRA_DEVELOPER, as for every other command (one resolution)."""
    monkeypatch.setenv("ORCHESTRA_DEVELOPER", "ben")  # a developer: may not approve
    code, out = _run("deprecate", "adr-writer", "1", "--database", db)
    assert code == 2 and "developer:ben may not deprecate_agent" in out
    code, out = _run("deprecate", "adr-writer", "1", "--as", "dee", "--database", db)
    assert code == 0, out  # --as overrides it
    audit = json.loads(runner.invoke(app, ["audit", "list", "--database", db, "--json"]).output)
    assert [e["actor"] for e in audit if e["action"] == "registry.deprecate"] == ["developer:dee"]
