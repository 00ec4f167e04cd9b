"""Export to Claude Code sub-agent files, and import of a team's own agent files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestra.config import parse_config
from orchestra.errors import RosterError
from orchestra.roster import (
    RosterInvalid,
    agent_mark,
    export_claude_code,
    import_agents,
    load_roster,
    strip_agent_mark,
)
from tests.roster.agentfiles import write_agent


@pytest.fixture
def roster_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    write_agent(folder, "py-dev", description="Writes Python: use when tests fail, #1 job.")
    write_agent(folder, "go-dev", category="languages", specialties="[go, gomod, testing]")
    write_agent(
        folder,
        "reviewer",
        category="review",
        tier="sonnet",
        fallback="opus",
        tools="Read, Grep, Glob",
    )
    return folder


def _front_and_body(path: Path) -> tuple[dict[str, object], str]:
    text = path.read_text(encoding="utf-8")
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def test_export_writes_exactly_claude_codes_front_matter_and_the_mark(
    tmp_path: Path, roster_dir: Path
) -> None:
    roster = load_roster(roster_dir)
    config = parse_config("roster: {tier_overrides: {agents: {go-dev: opus}}}", environ={})
    dest = tmp_path / ".claude" / "agents"
    result = export_claude_code(roster, dest, config)
    assert sorted(result.written) == ["go-dev", "py-dev", "reviewer"]
    front, body = _front_and_body(dest / "py-dev.md")
    assert front == {
        "name": "py-dev",
        "description": "Writes Python: use when tests fail, #1 job.",
        "tools": "Read, Grep, Glob, Edit, Write, Bash",
        "model": "haiku",
    }
    assert body.startswith(agent_mark("py-dev"))
    name, rest = strip_agent_mark(body)
    assert name == "py-dev" and rest == roster.get("py-dev").prompt
    assert _front_and_body(dest / "go-dev.md")[0]["model"] == "opus"  # the override
    assert _front_and_body(dest / "reviewer.md")[0]["tools"] == "Read, Grep, Glob"


def test_export_is_idempotent_and_removes_only_its_own_stale_files(
    tmp_path: Path, roster_dir: Path
) -> None:
    dest = tmp_path / "out"
    export_claude_code(load_roster(roster_dir), dest)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    again = export_claude_code(load_roster(roster_dir), dest)
    assert again.written == [] and sorted(again.unchanged) == ["go-dev", "py-dev", "reviewer"]
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before

    (dest / "notes.md").write_text("my own notes\n")
    (roster_dir / "go-dev.md").unlink()
    third = export_claude_code(load_roster(roster_dir), dest)
    assert third.removed == ["go-dev"]
    assert not (dest / "go-dev.md").exists()
    assert (dest / "notes.md").read_text() == "my own notes\n"


def test_export_refuses_to_overwrite_foreign_files_unless_forced(
    tmp_path: Path, roster_dir: Path
) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "py-dev.md").write_text("---\nname: py-dev\n---\nhand-written\n")
    (dest / "reviewer.md").write_text("mine too\n")
    with pytest.raises(RosterError) as caught:
        export_claude_code(load_roster(roster_dir), dest)
    assert "2 file(s)" in caught.value.message and "--force" in (caught.value.hint or "")
    assert sorted(p.name for p in dest.iterdir()) == ["py-dev.md", "reviewer.md"]  # untouched
    assert (dest / "reviewer.md").read_text() == "mine too\n"
    export_claude_code(load_roster(roster_dir), dest, force=True)
    assert strip_agent_mark((dest / "reviewer.md").read_text())[0] == "reviewer"


def test_import_copies_valid_files_and_replaces_changed_ones(
    tmp_path: Path, roster_dir: Path
) -> None:
    source = tmp_path / "team"
    write_agent(source, "payments-dev", specialties="[payments, python, ledgers]")
    target = tmp_path / ".orchestra" / "agents"
    existing = list(load_roster(roster_dir))
    result = import_agents(source, target, existing)
    assert result.added == ["payments-dev"]
    assert (target / "payments-dev.md").read_bytes() == (source / "payments-dev.md").read_bytes()
    # Importing a changed version replaces it, although the roster now contains it.
    write_agent(source, "payments-dev", specialties="[payments, python, refunds]")
    existing = list(load_roster(roster_dir, config=parse_config("", environ={}), base_dir=tmp_path))
    again = import_agents(source, target, existing)
    assert again.replaced == ["payments-dev"]
    assert "refunds" in (target / "payments-dev.md").read_text()


def test_import_refuses_with_every_error_and_writes_nothing(
    tmp_path: Path, roster_dir: Path
) -> None:
    source = tmp_path / "team"
    write_agent(source, "fine-dev")
    write_agent(source, "bad-tool", tools="Read, Laser")
    write_agent(source, "py-dev")  # clashes with the existing roster
    target = tmp_path / "target"
    with pytest.raises(RosterInvalid) as caught:
        import_agents(source, target, list(load_roster(roster_dir)))
    messages = [p.render() for p in caught.value.problems]
    assert any("bad-tool.md:4: tools: unknown tool 'Laser'" in m for m in messages)
    assert any("py-dev" in m and "already used by" in m for m in messages)
    assert not target.exists()


def test_import_of_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RosterInvalid) as caught:
        import_agents(tmp_path / "empty", tmp_path / "target", [])
    assert "no agent files" in caught.value.problems[0].message
