"""``orchestra claude-code env|install``, and the real Claude Code CLI through the gateway."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.roster import load_roster
from orchestra.testing import FakeUpstream, RecordedRequest, Reply, Step, ToolCall
from tests.gateway.helpers import gateway_config, make_app, memory_accountant, serve

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_env_prints_exports_without_a_key_it_was_not_given() -> None:
    result = runner.invoke(app, ["claude-code", "env", "--base-url", "http://gw.example:9000/"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "export ANTHROPIC_BASE_URL=http://gw.example:9000" in lines
    assert "export ANTHROPIC_DEFAULT_OPUS_MODEL=opus" in lines
    assert "export ANTHROPIC_DEFAULT_SONNET_MODEL=sonnet" in lines
    assert "export ANTHROPIC_DEFAULT_HAIKU_MODEL=haiku" in lines
    assert not any(line.startswith("export ANTHROPIC_API_KEY") for line in lines)
    assert "orc_" not in result.output


def test_env_with_a_key_quotes_it_and_bearer_uses_auth_token() -> None:
    result = runner.invoke(
        app, ["claude-code", "env", "--key", "orc_a b", "--base-url", "http://x"]
    )
    assert "export ANTHROPIC_API_KEY='orc_a b'" in result.output.splitlines()
    result = runner.invoke(
        app,
        ["claude-code", "env", "--key", "orc_k", "--bearer", "--json", "--base-url", "http://x"],
    )
    data = json.loads(result.output)
    assert data["ANTHROPIC_AUTH_TOKEN"] == "orc_k" and "ANTHROPIC_API_KEY" not in data


def test_env_defaults_to_the_configured_listen_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "orchestra.yaml").write_text("gateway:\n  host: 0.0.0.0\n  port: 9123\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["claude-code", "env"])
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:9123" in result.output.splitlines()


def test_install_merges_settings_and_keeps_the_key_private(tmp_path: Path) -> None:
    claude = tmp_path / ".claude"
    claude.mkdir()
    (claude / "settings.json").write_text(
        json.dumps(
            {
                "permissions": {"allow": ["Bash(ls)"]},
                "env": {"MY_VAR": "1", "ANTHROPIC_BASE_URL": "http://old"},
                "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "mine"}]}]},
            }
        )
    )
    result = runner.invoke(
        app,
        ["claude-code", "install", str(tmp_path), "--key", "orc_secret", "--base-url", "http://gw"],
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((claude / "settings.json").read_text())
    assert settings["permissions"] == {"allow": ["Bash(ls)"]}
    assert settings["env"]["MY_VAR"] == "1"
    assert settings["env"]["ANTHROPIC_BASE_URL"] == "http://gw"
    assert settings["hooks"]["Stop"][0]["hooks"][0]["command"] == "mine"
    hooks_module = importlib.util.find_spec("orchestra.knowledge.hooks")
    if hooks_module is not None:  # the knowledge hooks are merged in, next to the user's
        from orchestra.knowledge.hooks import claude_code_hooks

        for event, entries in claude_code_hooks().items():
            assert all(entry in settings["hooks"][event] for entry in entries)
    assert "orc_secret" not in (claude / "settings.json").read_text()
    local = claude / "settings.local.json"
    assert json.loads(local.read_text())["env"]["ANTHROPIC_API_KEY"] == "orc_secret"
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    agents = sorted(p.name for p in (claude / "agents").glob("*.md"))
    assert len(agents) == len(load_roster())
    # A second install changes nothing and does not duplicate anything.
    again = runner.invoke(app, ["claude-code", "install", str(tmp_path), "--base-url", "http://gw"])
    assert again.exit_code == 0, again.output
    assert json.loads((claude / "settings.json").read_text()) == settings
    assert json.loads(local.read_text())["env"]["ANTHROPIC_API_KEY"] == "orc_secret"


def test_install_refuses_to_clobber_unreadable_settings(tmp_path: Path) -> None:
    claude = tmp_path / ".claude"
    claude.mkdir()
    (claude / "settings.json").write_text("{not json")
    result = runner.invoke(
        app, ["claude-code", "install", str(tmp_path), "--base-url", "http://gw"]
    )
    assert result.exit_code != 0
    assert (claude / "settings.json").read_text() == "{not json"


def _claude_binary() -> str | None:
    for candidate in (
        REPO / ".venv/node/bin/claude",
        REPO / ".venv/node/node_modules/.bin/claude",
    ):
        if candidate.exists():
            return str(candidate)
    return shutil.which("claude")


SUBAGENT = "api-designer"


def _responder(subagent_prompt_line: str) -> Any:
    """Main agent: call the sub-agent tool, then finish; sub-agent: answer."""

    def respond(request: RecordedRequest) -> Step | None:
        body = request.json
        if not isinstance(body, dict) or "messages" not in body:
            return None
        last = body["messages"][-1].get("content")
        if isinstance(last, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in last
        ):
            return Reply(text="main agent done")
        if subagent_prompt_line in json.dumps(body.get("system")):
            return Reply(text="sub-agent answer")
        if "Agent" in [t.get("name") for t in body.get("tools", [])]:
            call = {
                "subagent_type": SUBAGENT,
                "description": "design the api",
                "prompt": "Design the orders API",
                "run_in_background": False,
            }
            return Reply(tool_calls=[ToolCall("Agent", call)])
        return None

    return respond


@pytest.mark.slow
@pytest.mark.claude_code
def test_real_claude_code_subagent_is_attributed_and_the_mark_stripped(tmp_path: Path) -> None:
    binary = _claude_binary()
    if binary is None:
        pytest.skip("the Claude Code CLI is not installed (make .venv/.test installs it)")
    agent = load_roster().get(SUBAGENT)
    prompt_line = next(line for line in agent.prompt.splitlines() if len(line) > 30)
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    with FakeUpstream.start() as upstream:
        upstream.responder = _responder(json.dumps(prompt_line)[1:-1])
        # ^ the system prompt is compared as JSON text, so compare the escaped line
        accountant = memory_accountant()
        key = accountant.add_key("alice", "payments")
        with serve(make_app(gateway_config(upstream.base_url), accountant)) as server:
            installed = runner.invoke(
                app,
                [
                    "claude-code",
                    "install",
                    str(project),
                    "--key",
                    key,
                    "--base-url",
                    server.base_url,
                ],
            )
            assert installed.exit_code == 0, installed.output
            env = {
                "PATH": os.environ["PATH"],
                "HOME": str(home),
                "DISABLE_AUTOUPDATER": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            }
            done = subprocess.run(
                [binary, "-p", f"use the {SUBAGENT} agent", "--output-format", "json"],
                env=env,
                cwd=project,
                capture_output=True,
                text=True,
                timeout=180,
            )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["result"] == "main agent done"
        escaped = json.dumps(prompt_line)[1:-1]
        sub_requests = [
            r for r in upstream.requests if escaped in json.dumps((r.json or {}).get("system"))
        ]
    assert sub_requests, "the sub-agent's request never reached the upstream"
    for request in upstream.requests:
        assert "orchestra-agent" not in json.dumps(request.json.get("system"))
    assert sub_requests[0].json["model"] == "claude-sonnet-4-5"  # the sonnet tier's model
    by_agent = [e for e in accountant.entries if e.agent == SUBAGENT]
    assert len(by_agent) == 1
    assert by_agent[0].tier == agent.tier == "sonnet"
    assert by_agent[0].outcome == "ok"
    main_calls = [e for e in accountant.entries if e.agent is None]
    assert main_calls and all(e.tier == "opus" for e in main_calls)
