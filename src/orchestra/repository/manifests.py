"""Reading the project files that say how a repository is built and tested."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def read_pyproject(repo: Path) -> dict[str, Any]:
    """``pyproject.toml`` as a dict (empty when missing or unreadable)."""
    path = repo / "pyproject.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def read_package_json(repo: Path) -> dict[str, Any] | None:
    """``package.json`` as a dict, or ``None`` when there is none (or it is not JSON)."""
    path = repo / "package.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_RUNNERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bvitest\b"), "vitest"),
    (re.compile(r"\bjest\b"), "jest"),
    # node's own runner, and what starts it (tsx, better-node-test, borp)
    (re.compile(r"\b(?:node|tsx)\b[^&|;]*\s--test\b|node:test|\bbnt\b|\bborp\b"), "node"),
)
_SCRIPT_CALL = re.compile(
    r"\b(?:npm|pnpm|yarn|bun)(?:\s+(?:run|run-script))?\s+(?:--\S+\s+)*(?P<name>[\w:.-]+)"
)


def javascript_runner(script: str, scripts: Mapping[str, Any] | None = None) -> str:
    """The runner an npm ``test`` script starts: ``vitest``, ``jest``, ``node``, ``unknown``.

    A script that calls other scripts (``npm run test:unit && npm run lint``,
    ``pnpm test:unit``) is followed into them, through ``scripts`` (package.json's).
    """
    seen: set[str] = set()
    pending = [script]
    while pending:
        text = pending.pop(0)
        for pattern, runner in _RUNNERS:
            if pattern.search(text):
                return runner
        for match in _SCRIPT_CALL.finditer(text):
            name = match.group("name")
            body = (scripts or {}).get(name)
            if isinstance(body, str) and name not in seen:
                seen.add(name)
                pending.append(body)
    return "unknown"
