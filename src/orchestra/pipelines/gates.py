"""The gates the engine enforces, judged from real test runs.

Red: the new tests must be syntactically valid, collect, and fail because the behaviour is
missing, while the existing tests still pass. Green: everything passes and the red tests
are byte-identical to what was committed.
"""

from __future__ import annotations

import fnmatch
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.tools.sandbox import CommandResult
from orchestra.tools.toolbox import Toolbox

TEST_PATTERNS = ("tests/*", "test/*", "*/tests/*", "test_*.py", "*_test.py", "*/test_*.py")
MISSING_BEHAVIOUR = re.compile(
    r"(ModuleNotFoundError: No module named '(?P<mod>[\w.]+)'"
    r"|ImportError: cannot import name '(?P<name>\w+)' from '(?P<src>[\w.]+)')"
)


def is_test_path(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in TEST_PATTERNS)


@dataclass
class TestCase:
    """One test from a junit report."""

    name: str
    outcome: str
    """``passed``, ``failed``, ``error``, ``skipped``."""
    message: str = ""


@dataclass
class TestRun:
    """A test command's result plus its per-test outcomes when the runner reports them."""

    result: CommandResult
    cases: list[TestCase] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for case in self.cases:
            out[case.outcome] = out.get(case.outcome, 0) + 1
        return out

    def summary(self) -> dict[str, object]:
        return {
            "exit_code": self.result.exit_code,
            "ok": self.passed,
            "duration_s": round(self.result.duration_s, 3),
            "timed_out": self.result.timed_out,
            **self.counts,
        }

    @property
    def passed(self) -> bool:
        # pytest exit 5 = no tests collected: nothing failed.
        return self.result.exit_code in (0, 5) and not self.result.timed_out


def is_pytest(command: list[str]) -> bool:
    return any("pytest" in part for part in command)


def parse_junit(path: Path) -> list[TestCase]:
    if not path.is_file():
        return []
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - file written by pytest in our sandbox
    except ET.ParseError:
        return []
    cases = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in {"failure", "error", "skipped"}:
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or "") + "\n" + (child.text or "")
                break
        cases.append(TestCase(name, outcome, message.strip()))
    return cases


def run_tests(
    toolbox: Toolbox, paths: list[str], report: Path, ignore: list[str] | None = None
) -> TestRun:
    """Run the test command; with pytest also collect per-test outcomes."""
    extra: list[str] = []
    if is_pytest(toolbox.test_command):
        report.parent.mkdir(parents=True, exist_ok=True)
        report.unlink(missing_ok=True)
        extra = [f"--junitxml={report}"] + [f"--ignore={p}" for p in ignore or []]
    result = toolbox.run_tests([*extra, *paths])
    return TestRun(result, parse_junit(report))


@dataclass
class GateVerdict:
    """Whether a gate passed, and the reason the agent is told when it did not."""

    accepted: bool
    reason: str
    output: str = ""


def judge_red(
    new_tests: list[str],
    syntax_errors: dict[str, str],
    existing: TestRun | None,
    new: TestRun,
    planned_modules: set[str],
    pytest_runner: bool,
) -> GateVerdict:
    """Decide whether freshly written tests fail for the right reason."""
    if not new_tests:
        return GateVerdict(False, "no test files were written; write tests under tests/")
    if syntax_errors:
        detail = "\n".join(f"{path}: {err}" for path, err in syntax_errors.items())
        return GateVerdict(False, "the test files do not compile", detail)
    if existing is not None and not existing.passed:
        return GateVerdict(
            False,
            "existing tests fail with your test files present; do not break them",
            existing.result.combined(),
        )
    output = new.result.combined()
    if new.passed:
        return GateVerdict(
            False,
            "the new tests already pass before any implementation: they do not test the "
            "missing behaviour",
            output,
        )
    if not pytest_runner:
        return GateVerdict(True, "the new tests fail (runner without per-test report)", output)
    errors = [case for case in new.cases if case.outcome == "error"]
    for case in errors:
        match = MISSING_BEHAVIOUR.search(case.message) or MISSING_BEHAVIOUR.search(output)
        missing = match and (match.group("mod") or match.group("src") or "")
        if not missing or not (
            missing in planned_modules or missing.split(".")[-1] in planned_modules
        ):
            return GateVerdict(
                False,
                f"{case.name} errors for a reason other than the missing behaviour "
                "(the test file itself is broken or imports something that will not exist)",
                case.message or output,
            )
    passing = [case.name for case in new.cases if case.outcome == "passed"]
    if passing:
        return GateVerdict(
            False,
            "these new tests already pass, so they do not pin the new behaviour: "
            + ", ".join(passing),
            output,
        )
    if not new.cases:
        return GateVerdict(False, "no tests were collected from the new files", output)
    return GateVerdict(True, "the new tests fail because the behaviour is missing", output)


def syntax_errors(root: Path, paths: list[str]) -> dict[str, str]:
    """Compile each Python file; returns path -> error for those that do not compile."""
    errors: dict[str, str] = {}
    for rel in paths:
        if not rel.endswith(".py") or not (root / rel).is_file():
            continue
        try:
            compile((root / rel).read_text(encoding="utf-8"), rel, "exec")
        except SyntaxError as exc:
            errors[rel] = f"line {exc.lineno}: {exc.msg}"
    return errors
