"""Reading the project files that say how a repository is built and tested."""

from __future__ import annotations

import json
import tomllib
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


def javascript_runner(script: str) -> str:
    """The runner an npm ``test`` script starts: ``vitest``, ``jest``, ``node``, ``unknown``."""
    if "vitest" in script:
        return "vitest"
    if "jest" in script:
        return "jest"
    if "node --test" in script or "node:test" in script:
        return "node"
    return "unknown"
