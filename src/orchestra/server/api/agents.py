"""``/api/v1/agents/import``: add agent files to the server's roster (``orchestra agents
import``): validated as the CLI validates them (every error named, nothing written on
one), then copied into the server's ``roster.import_dir``. Admins only; audited with the
agents added and replaced. (Sharing agents across the organisation goes through the agent
registry, ``/api/v1/registry``; this is the server's own roster folder.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestra.errors import ApiError
from orchestra.identity import register_action
from orchestra.roster import import_agents, load_roster
from orchestra.server.api.endpoint import Call, Endpoint

register_action("import_agents", frozenset({"admin"}), mutating=True)

FILE_NAME = r"^[a-z0-9][a-z0-9-]{0,63}\.md$"


class AgentFiles(BaseModel):
    """Agent files by file name (``<name>.md``): front matter and prompt."""

    model_config = ConfigDict(extra="forbid")
    files: dict[str, str] = Field(min_length=1, max_length=200)


class Imported(BaseModel):
    """What the import copied into the server's roster folder."""

    added: list[str]
    replaced: list[str]
    unchanged: list[str]
    warnings: list[str]


class BadFileName(ApiError):
    """Not an agent file name, or a file too large."""

    status = 400


def _check_names(files: dict[str, str]) -> None:
    import re

    for name, text in files.items():
        if not re.match(FILE_NAME, name):
            raise BadFileName(
                f"{name!r} is not an agent file name", hint="name files <name>.md, in lower case"
            )
        if len(text) > 200_000:
            raise BadFileName(f"{name} is larger than 200000 characters", hint="send less")


def _import(files: dict[str, str], base: Path, config: Any) -> Any:
    target = config.roster.import_dir
    target = target if target.is_absolute() else base / target
    existing = load_roster(config=config, base_dir=base)
    with tempfile.TemporaryDirectory(prefix="orchestra-import-") as folder:
        for name, text in files.items():
            (Path(folder) / name).write_text(text, encoding="utf-8")
        return import_agents(Path(folder), target, list(existing))


async def _import_agents(call: Call[Any, AgentFiles]) -> Imported:
    _check_names(call.body.files)
    base = call.ctx.base_dir or Path.cwd()
    result = await call.blocking(_import, call.body.files, base, call.ctx.current_config)
    problems = result.report.warnings if result.report is not None else []
    warnings = [f"{p.location}: {p.message}" for p in problems]
    out = Imported(
        added=result.added, replaced=result.replaced, unchanged=result.unchanged, warnings=warnings
    )
    details = {"added": out.added, "replaced": out.replaced, "folder": str(result.destination)}
    await call.blocking(
        call.ctx.accounting().audit.append, call.identity.actor, "agents.import", "roster", details
    )
    return out


ENDPOINTS = [
    Endpoint(
        "POST",
        "/agents/import",
        "import_agents",
        _import_agents,
        "Validate agent files and add them to the server's roster folder (audited)",
        Imported,
        body=AgentFiles,
        tag="agents",
    ),
]
