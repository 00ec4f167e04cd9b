"""Versioned rule files shipped with the package (``<folder>/<prefix>-<version>.json``):
DORA bands, maturity rules, roadmaps. A new version is a new file, never an edit in code."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from orchestra.analytics.errors import AnalyticsError


def data_versions(folder: str, prefix: str) -> list[str]:
    """The versions of ``prefix`` shipped in ``folder``."""
    root = resources.files("orchestra.analytics") / folder
    return sorted(
        p.name.removeprefix(f"{prefix}-").removesuffix(".json")
        for p in root.iterdir()
        if p.name.startswith(f"{prefix}-") and p.name.endswith(".json")
    )


def load_data(folder: str, prefix: str, version: str, what: str) -> dict[str, Any]:
    """The content of ``<folder>/<prefix>-<version>.json``; ``what`` names it in the error
    when there is no such version."""
    shipped = data_versions(folder, prefix)
    if version not in shipped:
        raise AnalyticsError(f"no {what} {version!r}", hint="one of: " + ", ".join(shipped))
    path = resources.files("orchestra.analytics") / folder / f"{prefix}-{version}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
