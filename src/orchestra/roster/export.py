"""Export the roster as Claude Code sub-agents (``.claude/agents/<name>.md``).

Claude Code reads exactly four front-matter keys: ``name``, ``description``, ``tools``
and ``model``. The exported prompt starts with the attribution mark, so that the
gateway can tell which roster agent a Claude Code request comes from (it strips the mark
before forwarding). The mark also tells a later export which files in the folder are
Orchestra's: only those are overwritten or removed without ``force``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestra.config.schema import OrchestraConfig
from orchestra.errors import RosterError
from orchestra.roster.definition import AgentDefinition
from orchestra.roster.marker import agent_mark, strip_agent_mark
from orchestra.roster.roster import Roster, effective_tier


@dataclass
class ExportResult:
    """What an export did, by agent name."""

    destination: Path
    written: list[str] = field(default_factory=list)
    """Files created or changed."""
    unchanged: list[str] = field(default_factory=list)
    """Files that already had exactly this content."""
    removed: list[str] = field(default_factory=list)
    """Orchestra-exported files of agents no longer in the roster."""


def render_claude_code(agent: AgentDefinition, config: OrchestraConfig | None = None) -> str:
    """The Claude Code sub-agent file for ``agent`` (model = its effective tier)."""
    front = {
        "name": agent.name,
        "description": agent.description,
        "tools": ", ".join(agent.claude_tools),
        "model": effective_tier(agent, config),
    }
    # safe_dump quotes whatever needs quoting (a ': ' in a description would otherwise
    # break Claude Code's parser); width keeps each value on one line.
    header = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10_000)
    return f"---\n{header}---\n{agent_mark(agent.name)}{agent.prompt}"


def _owner(path: Path) -> str | None:
    """The agent name in the file's Orchestra mark, or ``None`` for a foreign file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    name, _ = strip_agent_mark(text)
    return name


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_claude_code(
    roster: Roster,
    dest: Path,
    config: OrchestraConfig | None = None,
    *,
    force: bool = False,
) -> ExportResult:
    """Write one Claude Code sub-agent file per agent into ``dest``.

    Idempotent: unchanged files are left alone. Files in ``dest`` that Orchestra did not
    write (no attribution mark for that agent) are never overwritten unless ``force``;
    when any would be, nothing is written and :class:`RosterError` lists them all.
    """
    if dest.exists() and not dest.is_dir():
        raise RosterError(
            f"export destination {dest} is a file", hint="pass a folder, e.g. .claude/agents"
        )
    rendered = {a.name: render_claude_code(a, config) for a in roster}
    conflicts = []
    for name in rendered:
        target = dest / f"{name}.md"
        if target.exists() and _owner(target) != name and not force:
            conflicts.append(str(target))
    if conflicts:
        raise RosterError(
            f"{len(conflicts)} file(s) in {dest} were not written by Orchestra: "
            + ", ".join(conflicts),
            hint="move them away, or pass --force to overwrite them",
        )
    dest.mkdir(parents=True, exist_ok=True)
    result = ExportResult(destination=dest)
    for name, text in rendered.items():
        target = dest / f"{name}.md"
        if target.exists() and target.read_text(encoding="utf-8") == text:
            result.unchanged.append(name)
            continue
        _write_atomic(target, text)
        result.written.append(name)
    for stale in sorted(dest.glob("*.md")):
        owner = _owner(stale)
        if owner is not None and owner == stale.stem and owner not in rendered:
            stale.unlink()
            result.removed.append(owner)
    return result
