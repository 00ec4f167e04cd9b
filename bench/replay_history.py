"""An experiment at $0 on a real repository's history: its harness, measured.

    python -m bench.replay_history PATH/TO/REPO --limit 3 --replicates 2 --out /tmp/exp \
        --repo-settings '{test_command: [python, -m, pytest, -q], preexisting_failures: true}'
    python -m bench.replay_history PATH/TO/JS-REPO --limit 2 --replicates 1 --out /tmp/exp \
        --setup 'pnpm install --frozen-lockfile'

Builds a suite from the repository's history (``orchestra suite from-git``), then runs it
on two arms whose models replay each task's commit through the whole test-first pipeline
(real engine, gateway, ledger, hidden-test judge); the arm ``weak`` leaves the first task
unsolved. ``--setup`` is what a developer runs once in a fresh clone (what ``orchestra
doctor`` tells them, e.g. ``npm ci``): it runs in each task's checkout before its runs.
Writes the results file and the report (Markdown and JSON) under ``--out``
and prints the report. No model is paid for; what it checks is the harness: a replayed
commit must pass its hidden tests, and the statistics must say what so few pairs allow.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import time
from pathlib import Path

from orchestra.demo import replay_arm
from orchestra.experiments import (
    Arm,
    ExperimentSpec,
    checkout_base,
    experiment_report,
    render_markdown,
    run_experiment,
    suite_from_git,
)


def main() -> None:
    """Parse the options, run the experiment, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--replicates", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("replay-experiment"))
    parser.add_argument(
        "--repo-settings",
        default="{}",
        help="repositories.overrides settings (YAML flow mapping) for every task's checkout, "
        "e.g. '{test_command: [python, -m, pytest, -q], preexisting_failures: true}'",
    )
    parser.add_argument(
        "--setup",
        default="",
        help="a command run once in each task's fresh checkout, e.g. 'npm ci' (the "
        "dependencies a developer installs after cloning; orchestra doctor names it)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    suite = suite_from_git(args.repo, limit=args.limit)
    suite.save(args.out / "suite.json")
    spec = ExperimentSpec.model_validate(
        {
            "name": f"replay-{suite.name}",
            "suite": "suite.json",
            "replicates": args.replicates,
            "arms": [{"name": "replay"}, {"name": "weak"}],
        }
    )
    weak_on = frozenset({suite.tasks[0].text})
    workdir = (args.out / "work").resolve()
    if args.setup:
        for task in suite.tasks:
            dest = workdir / "checkouts" / task.id
            if not dest.exists():
                checkout_base(task, dest)
                subprocess.run(shlex.split(args.setup), cwd=dest, check=True)
    # Each task runs on a fresh checkout (workdir/checkouts/<task>): the repository's own
    # settings are keyed by those paths.
    overrides = "".join(
        f"    {workdir / 'checkouts' / t.id}: {args.repo_settings}\n" for t in suite.tasks
    )
    extra = (
        "engine: {max_output_tokens: 32000, green_iterations: 1}\n"
        f"repositories:\n  overrides:\n{overrides}"
    )

    def open_arm(arm: Arm):  # type: ignore[no-untyped-def]
        unsolved = weak_on if arm.name == "weak" else frozenset()
        # Replays write whole files in one call: room for large test files.
        return replay_arm(
            arm,
            home=args.out / "home",
            unsolved=unsolved,
            extra_yaml=extra,
        )

    outcome = run_experiment(
        spec, suite, open_arm, results=args.out / "results.jsonl", workdir=workdir
    )
    data = experiment_report(spec, outcome.measurements, not_run=outcome.not_run)
    (args.out / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "report.md").write_text(render_markdown(data))
    print(render_markdown(data))
    for m in outcome.measurements:
        print(m.arm, m.task, m.replicate, m.status, m.passed, m.acceptance.get("reason"))
    print(f"{outcome.ran} runs in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
