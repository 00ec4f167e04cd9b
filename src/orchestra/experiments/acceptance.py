"""Hidden acceptance tests: after a run, its branch is judged by the task's own tests.

As SWE-bench does, the hidden tests are written over the run's branch in a scratch
worktree and run in the repository's environment (:mod:`orchestra.repository`); the run
passes when every hidden test case that the task's own commit passes (SWE-bench's
FAIL_TO_PASS and PASS_TO_PASS together) passes on its branch; a hidden case that fails even
with the reference solution (a test broken on this interpreter) is left out. The agents
never saw these files.

Hidden cases are selected in each runner's own terms: pytest, vitest, jest and ``node
--test`` take the hidden test files as arguments; ``go test`` takes packages, not files,
so the module's tests run (``./...``) and the hidden cases are those of the test functions
the hidden ``_test.go`` files define, in the ids ``go test -json`` reports
(``example.com/m/pkg::TestName``, subtests ``TestName/sub`` included).
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
from orchestra.repository import TestEnvironment, TestReport, prepare_worktree, run_test_suite
from orchestra.repository.changes import go_package
from orchestra.repository.reports import CaseResult
from orchestra.repository.test_sources import go_test_spans
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


def _extract(repository: str, commit: str, dest: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", repository, "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    ).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def _run_hidden(
    task: Task, env: TestEnvironment, tree: Path, scratch: Path, limits: CommandLimits, name: str
) -> TestReport:
    """Run ``task``'s hidden tests in ``tree``; the report holds the hidden cases only."""
    go = env.runner == "go"
    report = run_test_suite(
        env,
        tree,
        home=scratch / "home",
        limits=limits,
        report_dir=scratch / "reports",
        name=name,
        paths=() if go else task.hidden_test_files,
    )
    if go:
        report.cases = _go_hidden_cases(task, tree, report.cases)
    return report


def _go_hidden_cases(task: Task, tree: Path, cases: list[CaseResult]) -> list[CaseResult]:
    """The cases of the hidden ``_test.go`` files' test functions, and the build failure
    of a package holding one (no test of it ran)."""
    functions: set[str] = set()
    packages: set[str] = set()
    for path in task.hidden_test_files:
        text = task.hidden_tests[path]
        if not path.endswith(".go") or text is None:
            continue
        package = go_package(tree, path)
        packages.add(package)
        functions.update(f"{package}::{span.name}" for span in go_test_spans(text))
    return [c for c in cases if c.id in packages or _go_function(c.id) in functions]


def _go_function(case_id: str) -> str:
    """``pkg::TestA/sub`` -> ``pkg::TestA`` (a subtest belongs to its test function)."""
    package, _, test = case_id.partition("::")
    return f"{package}::{test.split('/', 1)[0]}"


def reference_passing(
    task: Task, env: TestEnvironment, *, home: Path, limits: CommandLimits
) -> frozenset[str]:
    """The hidden test cases that pass on the task's own commit (the reference solution)."""
    scratch = Path(tempfile.mkdtemp(prefix="reference-", dir=home))
    try:
        tree = scratch / "tree"
        _extract(task.repository, task.commit, tree)
        prepare_worktree(env, tree)
        report = _run_hidden(task, env, tree, scratch, limits, "reference")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return frozenset(c.id for c in report.by_outcome("passed"))


def checkout_base(task: Task, dest: Path) -> Path:
    """A fresh repository at ``dest`` holding only the task's base tree, as one commit on
    ``main``: no history, so neither the solving commit nor the hidden tests are reachable
    from what the agents work on."""
    _extract(task.repository, task.base_commit, dest)
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
    required: frozenset[str] | None = None,
) -> Acceptance:
    """Run ``task``'s hidden tests against ``branch`` of ``checkout``; with ``required``
    (:func:`reference_passing`), only those cases count, and each must pass."""
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
        report = _run_hidden(task, env, worktree, scratch, limits, "acceptance")
    finally:
        git(checkout, "worktree", "remove", "--force", str(worktree), check=False)
        git(checkout, "worktree", "prune", check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    return _verdict(report, required)


def _verdict(report: TestReport, required: frozenset[str] | None) -> Acceptance:
    passed = {c.id for c in report.by_outcome("passed")}
    if required is None:
        failing = sorted(c.id for c in report.by_outcome("failed", "error"))
        ran = bool(report.cases)
    else:
        if not required:
            return Acceptance(False, report.counts, [], "no hidden test passes on the reference")
        failing = sorted(required - passed)
        ran = bool(passed & required) or bool(report.cases)
    if report.timed_out:
        return Acceptance(False, report.counts, failing[:20], "the hidden tests timed out")
    if not report.structured or not ran:
        return Acceptance(False, report.counts, failing[:20], "no hidden test case ran")
    if failing:
        return Acceptance(False, report.counts, failing[:20], f"{len(failing)} hidden tests fail")
    return Acceptance(True, report.counts)
