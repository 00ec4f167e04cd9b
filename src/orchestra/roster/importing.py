"""Import a team's own agent files into the configured import folder.

Everything is validated first, against the roster already loaded; with any error,
nothing is copied and every error is reported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.roster.definition import AgentDefinition, RosterInvalid, RosterProblem
from orchestra.roster.validate import SIMILARITY_THRESHOLD, ValidationReport, validate_directory


@dataclass
class ImportResult:
    """What an import copied."""

    destination: Path
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    """Agents that already existed in the import folder and were updated."""
    unchanged: list[str] = field(default_factory=list)
    report: ValidationReport | None = None


def import_agents(
    source: Path,
    destination: Path,
    existing: list[AgentDefinition],
    *,
    threshold: float = SIMILARITY_THRESHOLD,
) -> ImportResult:
    """Validate the agent files in ``source`` and copy them into ``destination``.

    ``existing`` is the roster loaded so far; agents read from ``destination`` itself are
    not counted as clashes, so importing a changed version of a file replaces it.
    Raises :class:`RosterInvalid` with every error, having written nothing.
    """
    dest = destination.resolve()
    reference = [a for a in existing if a.source is None or a.source.resolve().parent != dest]
    report = validate_directory(source, reference=reference, threshold=threshold)
    if report.errors:
        raise RosterInvalid(report.errors)
    if not report.agents:
        raise _no_agents(source)
    result = ImportResult(destination=destination, report=report)
    destination.mkdir(parents=True, exist_ok=True)
    for agent in report.agents:
        assert agent.source is not None  # read from a file just now
        target = destination / f"{agent.name}.md"
        data = agent.source.read_bytes()
        if target.exists():
            if target.read_bytes() == data:
                result.unchanged.append(agent.name)
                continue
            result.replaced.append(agent.name)
        else:
            result.added.append(agent.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=destination)
        os.close(fd)
        shutil.copyfile(agent.source, tmp)
        os.replace(tmp, target)
    return result


def _no_agents(source: Path) -> RosterInvalid:
    return RosterInvalid(
        [
            RosterProblem(
                str(source),
                None,
                "",
                "no agent files (*.md) found",
                "point at the folder that holds your <name>.md agent files",
            )
        ]
    )
