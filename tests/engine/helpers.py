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


ROOT = Path(__file__).resolve().parents[2]


def start_worker(
    home: Path, repo: Path, upstream_url: str, run_id: str, agents_dir: Path
) -> subprocess.Popen[bytes]:
    """A pipeline worker process (``tests.engine.worker``) running ``run_id``."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRA_DATABASE_URL"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.engine.worker",
            str(home),
            str(repo),
            upstream_url,
            run_id,
            str(agents_dir),
        ],
        cwd=ROOT,
        env={**env, "ORCHESTRA_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_after_calls(
    worker: subprocess.Popen[bytes], requests: Any, calls: int, timeout_s: float = 120
) -> int:
    """SIGKILL ``worker`` once the upstream has received ``calls`` requests.

    ``requests`` is a callable returning the upstream's request count. Returns the count
    at the moment the worker was dead.
    """
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout_s
    while requests() < calls:
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        assert time.monotonic() < deadline, "the worker made too few model calls"
        time.sleep(0.01)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    if worker.stderr:
        worker.stderr.close()
    return int(requests())


HAPPY_PATH_CALLS = 25
"""Model calls of an uninterrupted happy-path run (the scripted model's fixed script)."""


def assert_no_completed_call_repeated(requests: list[RecordedRequest]) -> None:
    """A resumed happy-path run made every model call once, except those in flight.

    Only calls in flight when the worker died may be made again (at most the agents
    running at that moment); every completed call is replayed from its record.
    """
    keys = call_keys(requests)
    repeated = {k: n for k, n in keys.items() if n > 1}
    assert len(repeated) <= 2, repeated
    assert all(n == 2 for n in repeated.values())
    assert len(keys) == HAPPY_PATH_CALLS
    assert len(requests) == HAPPY_PATH_CALLS + len(repeated)
