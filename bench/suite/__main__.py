"""The test suite's wall time against a baseline commit's, measured in one run.

    python -m bench.suite [--baseline fb5ad23] [--rounds 2]      (or: make bench-suite)

Issue 11 asks for the suite in at most 60% of the time it took at commit ``fb5ad23``,
both measured on the same machine, one right after the other. This checks the baseline
out in a temporary git worktree (detached; removed afterwards) and runs, alternately,
``baseline, current, baseline, current, ...``:

* the baseline as its Makefile's ``make unit`` ran it: ``pytest`` in one process;
* the current checkout as ``make unit`` runs it: ``pytest $(PYTEST_PARALLEL)``.

Both use this interpreter (its virtualenv holds both versions' test dependencies), each
with ``PYTHONPATH`` pointing at its own ``src``, ``-p no:cacheprovider``, and the
environment of this process (``ORCHESTRA_TEST_DATABASE_URL`` included, so both run their
PostgreSQL cases when it is set). Every run's wall time, test counts and the load average
before it are printed, then each pair's ratio and the median ratio. The machine's load
matters: measure on a quiet machine for figures to quote.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASELINE = "fb5ad23"
"""The commit issue 11 measures against (before the restructuring)."""
CURRENT_PARALLEL = "-n auto --dist load --maxschedchunk 1"
"""``PYTEST_PARALLEL`` of the Makefile's ``unit`` target (kept equal to it)."""
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)")


@dataclass
class Run:
    """One timed run of a suite."""

    name: str
    seconds: float
    exit_code: int
    counts: dict[str, int]
    load_before: str


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _counts(output: str) -> dict[str, int]:
    lines = [line for line in output.splitlines() if " in " in line and "passed" in line]
    if not lines:
        return {}
    return {kind: int(n) for n, kind in SUMMARY.findall(lines[-1])}


def run_suite(name: str, checkout: Path, options: list[str], log: Path) -> Run:
    """Run ``checkout``'s suite with pytest ``options``; its output goes to ``log``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(checkout / "src")
    node_bin = ROOT / ".venv" / "node" / "node_modules" / ".bin"
    venv_node_bin = Path(sys.prefix) / "node" / "node_modules" / ".bin"
    env["PATH"] = os.pathsep.join([str(node_bin), str(venv_node_bin), env.get("PATH", "")])
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *options]
    load = _load()
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(argv, cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    return Run(name, seconds, done.returncode, _counts(log.read_text()), load)


def _report(run: Run) -> None:
    counts = ", ".join(f"{n} {kind}" for kind, n in run.counts.items()) or "no summary"
    print(
        f"{run.name:9} {run.seconds:8.1f} s  exit {run.exit_code}  ({counts})"
        f"  load before: {run.load_before}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE, help="commit to compare against")
    parser.add_argument("--rounds", type=int, default=1, help="baseline/current pairs")
    parser.add_argument(
        "--current-options",
        default=os.environ.get("PYTEST_PARALLEL", CURRENT_PARALLEL),
        help="pytest options for the current suite (default: make unit's)",
    )
    parser.add_argument(
        "--both-options", default="", help="pytest options for both, e.g. --durations=20"
    )
    parser.add_argument(
        "tests",
        nargs="*",
        help="test paths or ids for both (default: the whole suite); to compare single "
        "tests, give --current-options='' so both run in one process",
    )
    parser.add_argument("--logs", type=Path, default=None, help="folder for the runs' output")
    args = parser.parse_args()
    # Stopped with SIGTERM, still remove the baseline's worktree (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logs = args.logs or Path(tempfile.mkdtemp(prefix="orchestra-suite-bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="orchestra-baseline-") as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.baseline],
            check=True,
        )
        try:
            print(
                f"baseline {args.baseline}: pytest (one process); current: pytest "
                f"{args.current_options}; logs in {logs}",
                flush=True,
            )
            pairs: list[tuple[Run, Run]] = []
            for i in range(1, args.rounds + 1):
                both = [*shlex.split(args.both_options), *args.tests]
                before = run_suite("baseline", old, both, logs / f"baseline-{i}.txt")
                _report(before)
                after = run_suite(
                    "current",
                    ROOT,
                    [*shlex.split(args.current_options), *both],
                    logs / f"current-{i}.txt",
                )
                _report(after)
                pairs.append((before, after))
                print(f"round {i}: current / baseline = {after.seconds / before.seconds:.3f}")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False
            )
    ratios = [after.seconds / before.seconds for before, after in pairs]
    print(f"median ratio over {len(ratios)} round(s): {statistics.median(ratios):.3f}")
    failed = [r.name for pair in pairs for r in pair if r.exit_code != 0]
    if failed:
        print(f"note: a run failed ({', '.join(failed)}): see its log", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
