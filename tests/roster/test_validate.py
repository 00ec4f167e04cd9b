"""Whole-folder validation: tier split, unique names, near-duplicate prompts."""

from __future__ import annotations

from pathlib import Path

from orchestra.roster import (
    EXPECTED_BUILTIN_TIERS,
    SIMILARITY_THRESHOLD,
    load_roster,
    validate_directory,
)
from orchestra.roster.roster import BUILTIN_AGENTS_DIR, read_directory
from tests.roster.agentfiles import prompt_for, write_agent


def test_builtin_roster_is_valid_with_the_1_37_81_split() -> None:
    report = validate_directory()
    assert report.builtin
    assert [p.render() for p in report.errors] == []
    assert report.tier_counts == EXPECTED_BUILTIN_TIERS
    assert len(report.agents) == 119
    assert report.most_similar is not None
    assert report.most_similar.score < SIMILARITY_THRESHOLD


def test_builtin_roster_loads_and_picks_language_specialists() -> None:
    roster = load_roster()
    assert len(roster) == 119
    assert [a.name for a in roster.filter(tier="opus")] == ["chief-architect"]
    picks = {
        path: roster.pick_for_file(path)
        for path in ("a.py", "b.go", "c.rs", "d.tsx", "e.java", "f.rb", "g.sql", "h.sh")
    }
    assert {p: (a.name if a else None) for p, a in picks.items()} == {
        "a.py": "python-developer",
        "b.go": "go-developer",
        "c.rs": "rust-developer",
        "d.tsx": "react-developer",
        "e.java": "java-developer",
        "f.rb": "ruby-developer",
        "g.sql": "sql-developer",
        "h.sh": "shell-scripter",
    }
    for agent in roster:
        assert agent.engine_tools[-3:] == ("knowledge_search", "knowledge_store", "finish")


def test_team_folder_reports_tier_counts_without_enforcing_them(tmp_path: Path) -> None:
    write_agent(tmp_path, "one-dev")
    write_agent(tmp_path, "two-dev", tier="opus", fallback=None)
    report = validate_directory(tmp_path)
    assert not report.builtin
    assert report.ok, [p.render() for p in report.errors]
    assert report.tier_counts == {"opus": 1, "sonnet": 0, "haiku": 1}


def test_near_duplicate_prompts_are_errors_with_their_score(tmp_path: Path) -> None:
    body = prompt_for("original")
    write_agent(tmp_path, "first-dev", body=body)
    # The same prompt with a few words changed: a copy, not a new role.
    write_agent(tmp_path, "second-dev", body=body.replace("cache", "store").replace("lock", "x"))
    write_agent(tmp_path, "third-dev")
    report = validate_directory(tmp_path)
    (pair,) = report.similar
    assert (pair.first, pair.second) == ("first-dev", "second-dev")
    assert pair.score > 0.5
    (error,) = report.errors
    assert error.file.endswith("first-dev.md")
    assert f"near-identical to 'second-dev' (similarity {pair.score:.2f}" in error.message


def test_a_team_agent_copying_a_builtin_one_is_caught(tmp_path: Path) -> None:
    builtin, _ = read_directory(BUILTIN_AGENTS_DIR)
    source = next(a for a in builtin if a.name == "go-developer")
    write_agent(tmp_path, "our-go-dev", body=source.prompt.replace("Go", "Golang"))
    report = validate_directory(tmp_path, reference=builtin)
    assert [(p.first, p.second) for p in report.similar] == [("our-go-dev", "go-developer")]


def test_a_team_agent_reusing_a_builtin_name_is_an_error(tmp_path: Path) -> None:
    builtin, _ = read_directory(BUILTIN_AGENTS_DIR)
    write_agent(tmp_path, "python-developer")
    report = validate_directory(tmp_path, reference=builtin)
    assert any("is already used by" in p.message for p in report.errors)


def test_unknown_escalation_targets_are_warnings(tmp_path: Path) -> None:
    write_agent(tmp_path, "lonely-dev")
    report = validate_directory(tmp_path)
    assert report.ok
    targets = sorted(p.message.split("'")[1] for p in report.warnings)
    assert targets == ["security-auditor", "tech-lead"]


def test_similarity_ignores_the_shared_headings_and_is_symmetric() -> None:
    from orchestra.roster.validate import jaccard, shingles

    a, b = prompt_for("one"), prompt_for("two")
    assert jaccard(shingles(a), shingles(a)) == 1.0
    assert jaccard(shingles(a), shingles(b)) == jaccard(shingles(b), shingles(a))
    # Only the headings in common: no shared shingle at all.
    headings_only = "\n".join(f"## {s}\nx{i} y{i} z{i}" for i, s in enumerate("ABCDE"))
    assert not any("role" in sh or "never" in sh for sh in shingles(a))
    assert jaccard(shingles(a), shingles(headings_only)) == 0.0
