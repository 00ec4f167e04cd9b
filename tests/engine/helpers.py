"""Shared checks for pipeline runs."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from orchestra.testing.steps import RecordedRequest


def report_of(row: Any) -> dict[str, Any]:
    assert row.report_path, f"run {row.id} has no report ({row.status}: {row.failure_reason})"
    data: dict[str, Any] = json.loads(Path(row.report_path).with_suffix(".json").read_text())
    return data


def branch_log(repo: Path, branch: str) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%s", f"main..{branch}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return list(reversed(out.splitlines()))


def call_keys(requests: list[RecordedRequest]) -> Counter[tuple[str, int]]:
    """(step, turn) of every model call the upstream received."""
    keys: Counter[tuple[str, int]] = Counter()
    for request in requests:
        body = request.json or {}
        messages = body.get("messages") or []
        if not messages:
            continue
        first = messages[0]["content"]
        text = first if isinstance(first, str) else json.dumps(first)
        step = next((line[6:] for line in text.splitlines() if line.startswith("Step: ")), "?")
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        keys[(step, turn)] += 1
    return keys
