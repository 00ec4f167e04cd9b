"""Every mutating CLI command has an API equivalent, or is in the documented list of
CLI-only commands with its reason (docs/api.md, "Every mutating CLI command and its API
equivalent"). The CLI's command tree is walked through Typer's Click objects, so a new
command fails here until it is classified: given an API route, documented as CLI-only, or
listed below as changing nothing."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import typer

from orchestra.cli.app import app
from orchestra.server.api import endpoints

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"
SECTION = "## Every mutating CLI command and its API equivalent"

READ_ONLY = {
    # Commands that change nothing: they print what is recorded or configured, or check it.
    "agents list",
    "agents show",
    "agents validate",
    "audit list",
    "audit verify",
    "budgets list",
    "claude-code env",
    "config check",
    "doctor",
    "experiment list",
    "experiment report",
    "insight alerts history",
    "insight alerts list",
    "insight check",
    "insight definitions",
    "insight kpis",
    "insight maturity",
    "insight roi",
    "insight show",
    "kb search",
    "kb stats",
    "keys list",
    "org show",
    "org stage",
    "policy check",
    "policy test",
    "registry diff",
    "registry list",
    "registry pool show",
    "registry search",
    "registry show",
    "report",
    "rollout status",
    "runs",
    "secrets list",
    "slots",
    "spend",
    "status",
    "survey list",
    "survey results",
    "version",
    "workers",
}


def _commands(command: Any, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        return {" ".join(prefix): command}
    found: dict[str, Any] = {}
    for name, sub in subcommands.items():
        found.update(_commands(sub, (*prefix, name)))
    return found


def _tables() -> tuple[dict[str, list[tuple[str, str]]], dict[str, str]]:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    api_part, _, cli_only_part = section.partition("### CLI only, and why")
    row = re.compile(r"^\| `orchestra ([^`]+)` \| (.+) \|$", re.MULTILINE)
    routes = {
        cmd: re.findall(r"`(GET|POST|PUT|DELETE|PATCH) (/[^`]+)`", cell)
        for cmd, cell in row.findall(api_part)
    }
    cli_only = {cmd: cell.strip() for cmd, cell in row.findall(cli_only_part)}
    return routes, cli_only


def test_every_cli_command_is_read_only_or_has_an_api_route_or_a_documented_reason() -> None:
    commands = _commands(typer.main.get_command(app))
    routes, cli_only = _tables()
    assert len(commands) > 60 and len(routes) > 20 and len(cli_only) > 5
    unclassified = sorted(set(commands) - READ_ONLY - set(routes) - set(cli_only))
    assert unclassified == [], (
        f"new CLI command(s) {unclassified}: give each an API route in docs/api.md's table, "
        "document why it is CLI-only there, or (if it changes nothing) add it to READ_ONLY"
    )
    assert set(routes) <= set(commands), set(routes) - set(commands)
    assert set(cli_only) <= set(commands), set(cli_only) - set(commands)
    twice = (set(routes) & set(cli_only)) | ((set(routes) | set(cli_only)) & READ_ONLY)
    assert twice == set(), f"classified twice: {twice}"
    assert all(len(reason) > 20 for reason in cli_only.values())


def test_each_documented_api_equivalent_is_served() -> None:
    served = {(e.method, e.full_path) for e in endpoints()}
    routes, _ = _tables()
    for command, named in routes.items():
        assert named, f"`orchestra {command}` names no route"
        for method, path in named:
            assert (method, path) in served, f"`orchestra {command}`: {method} {path} is not served"


def test_no_command_that_checks_a_mutating_action_is_called_read_only() -> None:
    from orchestra.identity import ACTIONS

    commands = _commands(typer.main.get_command(app))
    for name in READ_ONLY:
        source = inspect.getsource(commands[name].callback)
        for action in re.findall(r"acting_as\([^,]+, \"(\w+)\"", source):
            assert not ACTIONS[action].mutating, f"`orchestra {name}` checks {action}"
