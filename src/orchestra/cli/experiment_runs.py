"""CLI helpers of ``orchestra experiment run / resume / list``: DBOS for the experiment
workflow in this process, and each run in a process of its own (``run-one``), since one
process holds one DBOS and every arm's engine launches its own."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from orchestra.errors import ExperimentError

REPLAY_YAML = "engine: {max_output_tokens: 32000, green_iterations: 1}\n"
"""Replays write whole files in one call: room for large test files."""


def run_in_subprocess(plan: dict[str, Any], task: str, arm: str, replicate: int) -> dict[str, Any]:
    """Make one run in a new ``orchestra experiment run-one`` process; its measurement."""
    import json

    options = plan.get("options") or {}
    with tempfile.TemporaryDirectory(prefix="orchestra-run-one-") as scratch:
        out = Path(scratch) / "measurement.json"
        argv = [
            sys.executable,
            "-c",
            "from orchestra.cli import main; main()",
            "experiment",
            "run-one",
            plan["experiment"],
            "--task",
            task,
            "--arm",
            arm,
            "--replicate",
            str(replicate),
            "--out",
            str(out),
        ]
        if options.get("config"):
            argv += ["--config", str(options["config"])]
        if options.get("replay"):
            argv.append("--replay")
        done = subprocess.run(argv, check=False)
        if done.returncode != 0 or not out.is_file():
            raise ExperimentError(
                f"run {task} on {arm} (replicate {replicate}) failed in its process "
                f"(exit {done.returncode})",
                hint="see its output above; `orchestra experiment resume ID` retries it",
            )
        data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return data


@contextmanager
def host_for_experiments() -> Iterator[Any]:
    """DBOS launched for experiment workflows on Orchestra's system database, with each
    step's run made in its own process."""
    from orchestra.config import default_database_url, orchestra_home
    from orchestra.engine import default_system_database_url
    from orchestra.experiments import bind_runner, experiment_host

    bind_runner(run_in_subprocess)
    home = orchestra_home()
    home.mkdir(parents=True, exist_ok=True)
    url = default_system_database_url(default_database_url(), home)
    with experiment_host(url) as host:
        yield host


def arm_opener(config: Path | None, *, replay: bool, workdir: Path) -> Any:
    """How ``run-one`` opens an arm: the configured engine, or models replaying each
    task's commit ($0, the harness check)."""
    from orchestra.experiments import Arm, ArmSession

    if replay:
        from orchestra.demo import replay_arm

        def open_replay(arm: Arm) -> AbstractContextManager[ArmSession]:
            return replay_arm(arm, home=workdir / "replay", extra_yaml=REPLAY_YAML)

        return open_replay
    from functools import partial

    from orchestra.app import experiment_arm
    from orchestra.config import default_database_url, load_config, orchestra_home

    return partial(
        experiment_arm,
        database_url=default_database_url(),
        home=orchestra_home(),
        base_config=load_config(config),
    )
