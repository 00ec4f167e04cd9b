"""Exported agents load in the real Claude Code CLI (run headless against a loopback server)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from orchestra.roster import export_claude_code, load_roster
from orchestra.testing import FakeUpstream
from orchestra.testing.claude_code import find_claude_code, offline_env

CLAUDE = find_claude_code()


@pytest.mark.claude_code
@pytest.mark.skipif(
    CLAUDE is None, reason="Claude Code CLI not installed (make test installs it with npm)"
)
def test_exported_builtin_agents_are_offered_by_claude_code(tmp_path: Path) -> None:
    assert CLAUDE is not None
    project = tmp_path / "project"
    home = tmp_path / "home"
    home.mkdir()
    roster = load_roster()
    result = export_claude_code(roster, project / ".claude" / "agents")
    assert len(result.written) == len(roster) == 119

    with FakeUpstream.start() as upstream:
        # Anything that is not the loopback upstream goes to a closed port: no network.
        env = offline_env(upstream.base_url, home)
        completed = subprocess.run(
            [CLAUDE, "-p", "hello", "--output-format", "json"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        requests = upstream.requests

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout)["is_error"] is False
    bodies = [r.json for r in requests if r.path.endswith("/messages")]
    assert bodies, f"Claude Code sent no Messages request; got {[r.path for r in requests]}"
    sent = "\n".join(_strings(bodies))
    missing = [a.name for a in roster if f"- {a.name}: " not in sent]
    assert missing == [], f"agents Claude Code did not offer: {missing[:10]}"
    # What Claude Code shows for an agent is the roster's description and tools.
    python = roster.get("python-developer")
    tools = ", ".join(python.claude_tools)
    assert f"- python-developer: {python.description} (Tools: {tools})" in sent


def _strings(value: object) -> list[str]:
    """Every string inside a decoded JSON value (system prompt, messages, tool specs)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
