"""Hidden acceptance tests: after a run, its branch is judged by the task's own tests.

As SWE-bench does, the hidden tests are written over the run's branch in a scratch
worktree and run in the repository's environment (:mod:`orchestra.repository`); the run
passes when every hidden test case passes. The agents never saw these files.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.experiments.suite import Task
from orchestra.repository import TestEnvironment, prepare_worktree, run_test_suite
from orchestra.tools import CommandLimits, git


@dataclass(frozen=True)
class Acceptance:
    """The hidden tests' verdict on one run's branch."""

    passed: bool
    counts: dict[str, int] = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)
    """Hidden test cases that failed or errored (at most 20)."""
    reason: str = ""
    """Why the run did not pass, when it did not."""


def checkout_base(task: Task, dest: Path) -> Path:
    """A fresh repository at ``dest`` holding only the task's base tree, as one commit on
    ``main``: no history, so neither the solving commit nor the hidden tests are reachable
    from what the agents work on."""
    archive = subprocess.run(
        ["git", "-C", task.repository, "archive", "--format=tar", task.base_commit],
        capture_output=True,
        check=True,
    ).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(
        dest,
        "-c",
        "user.name=Orchestra experiments",
        "-c",
        "user.email=experiments@localhost",
        "commit",
        "-q",
        "-m",
        f"base of task {task.id}",
    )
    return dest


def judge(
    task: Task,
    checkout: Path,
    branch: str | None,
    env: TestEnvironment,
    *,
    home: Path,
    limits: CommandLimits,
) -> Acceptance:
    """Run ``task``'s hidden tests against ``branch`` of ``checkout``."""
    if not branch or not git(checkout, "rev-parse", "--verify", "--quiet", branch, check=False):
        return Acceptance(False, reason="the run left no branch")
    scratch = Path(tempfile.mkdtemp(prefix="acceptance-", dir=home))
    worktree = scratch / "worktree"
    try:
        git(checkout, "worktree", "add", "-q", "--detach", str(worktree), branch)
        for rel, text in task.hidden_tests.items():
            target = worktree / rel
            if text is None:
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        prepare_worktree(env, worktree)
        report = run_test_suite(
            env,
            worktree,
            home=scratch / "home",
            limits=limits,
            report_dir=scratch / "reports",
            name="acceptance",
            paths=task.hidden_test_files,
        )
    finally:
        git(checkout, "worktree", "remove", "--force", str(worktree), check=False)
        git(checkout, "worktree", "prune", check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    failing = sorted(c.id for c in report.by_outcome("failed", "error"))
    if report.timed_out:
        return Acceptance(False, report.counts, failing, "the hidden tests timed out")
    if not report.structured or not report.cases:
        return Acceptance(False, report.counts, failing, "no hidden test case ran")
    if failing:
        return Acceptance(False, report.counts, failing[:20], f"{len(failing)} hidden tests fail")
    return Acceptance(True, report.counts)
