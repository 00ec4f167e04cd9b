"""Loading rosters, lookups, tier overrides and picking implementers by file."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.config import parse_config
from orchestra.errors import RosterError
from orchestra.roster import RosterInvalid, effective_tier, load_roster
from tests.roster.agentfiles import write_agent


@pytest.fixture
def team_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    write_agent(folder, "py-dev", specialties="[python, pytest, typing]")
    write_agent(folder, "django-dev", category="backend", specialties="[django, python, orm]")
    write_agent(folder, "ts-dev", specialties="[typescript, node, jest]")
    write_agent(folder, "react-dev", category="frontend", specialties="[react, typescript, jsx]")
    write_agent(
        folder,
        "py-reviewer",
        category="review",
        tier="sonnet",
        fallback="opus",
        tools="Read, Grep, Glob",
        specialties="[python, review, typing]",
    )
    return folder


def test_lookup_filter_and_close_name_suggestions(team_dir: Path) -> None:
    roster = load_roster(team_dir)
    assert len(roster) == 5 and "py-dev" in roster
    assert roster.get("ts-dev").specialties[0] == "typescript"
    assert [a.name for a in roster.filter(category="review")] == ["py-reviewer"]
    assert [a.name for a in roster.filter(tier="sonnet")] == ["py-reviewer"]
    assert sorted(a.name for a in roster.filter(specialty="python")) == [
        "django-dev",
        "py-dev",
        "py-reviewer",
    ]
    with pytest.raises(RosterError) as caught:
        roster.get("py-deev")
    assert "no agent named 'py-deev'" in caught.value.message
    assert caught.value.hint is not None and "py-dev" in caught.value.hint


def test_pick_for_files_prefers_language_specialists_and_ranks_by_coverage(
    team_dir: Path,
) -> None:
    roster = load_roster(team_dir)
    picked = roster.pick_for_files(
        ["src/app/models.py", "src/app/views.py", "web/App.tsx", "web/api.ts", "README"]
    )
    # .py goes to the languages agent, not the backend framework one; .tsx to react.
    assert [a.name for a in picked] == ["py-dev", "react-dev", "ts-dev"]
    assert roster.assign_files(["a.py", "b.tsx", "c.unknown"]) == {
        "py-dev": ["a.py"],
        "react-dev": ["b.tsx"],
    }
    assert roster.pick_for_file("x.rs") is None  # nobody here knows Rust
    assert roster.pick_for_file("notes.md") is None


def test_tier_overrides_agent_beats_category(team_dir: Path) -> None:
    roster = load_roster(team_dir)
    config = parse_config(
        "roster:\n  tier_overrides:\n    agents: {py-dev: opus}\n"
        "    categories: {languages: sonnet}\n",
        environ={},
    )
    assert effective_tier(roster.get("py-dev"), config) == "opus"
    assert effective_tier(roster.get("ts-dev"), config) == "sonnet"
    assert effective_tier(roster.get("react-dev"), config) == "haiku"
    assert effective_tier(roster.get("react-dev"), None) == "haiku"
    assert roster.tier_counts(config) == {"opus": 1, "sonnet": 2, "haiku": 2}


def test_configured_folders_add_team_agents(tmp_path: Path, team_dir: Path) -> None:
    write_agent(tmp_path / "ours", "payments-dev", specialties="[payments, python, stripe]")
    config = parse_config("roster:\n  directories: [ours]\n", environ={})
    roster = load_roster(team_dir, config=config, base_dir=tmp_path)
    assert "payments-dev" in roster and len(roster) == 6


def test_the_import_folder_is_loaded_when_present(tmp_path: Path, team_dir: Path) -> None:
    write_agent(tmp_path / ".orchestra" / "agents", "imported-dev")
    roster = load_roster(team_dir, config=parse_config("", environ={}), base_dir=tmp_path)
    assert "imported-dev" in roster


def test_duplicate_names_across_folders_name_both_files(tmp_path: Path, team_dir: Path) -> None:
    clash = write_agent(tmp_path / "ours", "py-dev", specialties="[python, flask, jinja]")
    config = parse_config("roster:\n  directories: [ours]\n", environ={})
    with pytest.raises(RosterInvalid) as caught:
        load_roster(team_dir, config=config, base_dir=tmp_path)
    (problem,) = caught.value.problems
    assert problem.file == str(clash)
    assert str(team_dir / "py-dev.md") in problem.message
    assert "rename one of the agents" in problem.hint


def test_every_broken_file_is_reported_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    write_agent(folder, "good-one")
    write_agent(folder, "bad-tool", tools="Read, Teleport")
    write_agent(folder, "bad-tier", tier="mega")
    with pytest.raises(RosterInvalid) as caught:
        load_roster(folder)
    files = sorted({Path(p.file).name for p in caught.value.problems})
    assert files == ["bad-tier.md", "bad-tool.md"]


def test_a_missing_configured_folder_is_an_error(tmp_path: Path, team_dir: Path) -> None:
    config = parse_config("roster:\n  directories: [nowhere]\n", environ={})
    with pytest.raises(RosterInvalid) as caught:
        load_roster(team_dir, config=config, base_dir=tmp_path)
    assert "agent folder does not exist" in caught.value.problems[0].message
