"""The red and green verdicts, judged per test case from a structured report.

Red: every new or changed test fails *because the behaviour is missing* (an assertion,
``NotImplementedError``, or an import/attribute error naming something a planned file
will provide); every other test keeps passing. Green: every test passes, except
pre-existing failures the user chose to leave out.

Every reason is bounded: a handful of test ids and the count of the rest, one short line
each, whatever the size of the suite. The functions here are pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orchestra.repository.changes import ChangedTests
from orchestra.repository.diagnosis import first_error_line
from orchestra.repository.planned import PlannedCode
from orchestra.repository.reports import CaseResult, TestReport, bounded

IDS_SHOWN = 5
"""Test ids named in a reason; the rest are counted."""
LINE_LIMIT = 240
"""Characters of one line of a reason."""
REASON_LIMIT = 2400
"""Characters of a whole reason."""

_NO_MODULE = re.compile(r"No module named '(?P<name>[\w.]+)'")
_CANNOT_IMPORT = re.compile(r"cannot import name '(?P<name>\w+)' from '(?P<module>[\w.]+)'")
_MODULE_ATTR = re.compile(r"module '(?P<module>[\w.]+)' has no attribute '(?P<name>\w+)'")
_OBJECT_ATTR = re.compile(
    r"(?:type object |')?'?(?P<owner>[\w.]+)'? object has no attribute '(?P<name>\w+)'"
    r"|type object '(?P<type>[\w.]+)' has no attribute '(?P<tname>\w+)'"
)
_SIGNATURE = re.compile(
    r"(?P<func>[\w.]+)\(\) (?:got an unexpected keyword argument|takes \d+ positional"
    r"|missing \d+ required)"
)
_JS_NOT_FUNCTION = re.compile(r"(?P<name>[\w.$]+) is not a (?:function|constructor)")
_JS_NO_EXPORT = re.compile(r"does not provide an export named '(?P<name>[\w$]+)'")
_JS_NO_MODULE = re.compile(r"Cannot find module '(?P<name>[^']+)'")
_GO_UNDEFINED = re.compile(r"undefined: (?P<name>[\w.]+)")
_JS_INSTANCEOF_UNDEFINED = re.compile(
    r"Right-hand side of 'instanceof' is not (?:an object|callable)"
)
_JS_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx")


def name_ids(ids: Sequence[str], shown: int = IDS_SHOWN) -> str:
    """``a, b, c and 12 more``: at most ``shown`` ids, the rest counted."""
    head = [bounded(i, 120) for i in ids[:shown]]
    rest = len(ids) - len(head)
    text = ", ".join(head)
    return f"{text} and {rest} more" if rest > 0 else text


@dataclass(frozen=True)
class Judgement:
    """Whether one failing case fails because the behaviour is missing, and why not."""

    right: bool
    why: str


def _judge_import(text: str, planned: PlannedCode) -> Judgement | None:
    if match := _CANNOT_IMPORT.search(text):
        module = match.group("module")
        if planned.provides_module(module) or planned.provides_name(match.group("name")):
            return Judgement(True, f"imports {match.group('name')} from planned {module}")
        return Judgement(
            False, f"imports {match.group('name')} from {module}, which no planned file provides"
        )
    if match := _NO_MODULE.search(text):
        name = match.group("name")
        if planned.provides_module(name):
            return Judgement(True, f"imports the planned module {name}")
        return Judgement(False, f"imports {name}, which no planned file provides")
    return None


def _judge_attribute(text: str, planned: PlannedCode) -> Judgement | None:
    if match := _MODULE_ATTR.search(text):
        module = match.group("module")
        if planned.provides_module(module):
            return Judgement(True, f"{module}.{match.group('name')} is missing (planned module)")
        return Judgement(False, f"{module} is not a planned module")
    if match := _OBJECT_ATTR.search(text):
        owner = match.group("owner") or match.group("type") or ""
        if planned.provides_name(owner):
            return Judgement(True, f"{owner} lacks {match.group('name') or match.group('tname')}")
        return Judgement(False, f"{owner} is not defined in a planned file")
    return None


def missing_behaviour(case: CaseResult, planned: PlannedCode) -> Judgement:
    """Whether a failing ``case`` fails because the planned behaviour is missing."""
    text = f"{case.error_type}: {case.message}\n{case.detail}"
    kind = case.error_type.rsplit(".", 1)[-1]
    if case.phase in {"setup", "teardown"}:
        return Judgement(False, f"error in a fixture ({case.phase}): {case.line()}")
    if kind in {"ImportError", "ModuleNotFoundError"}:
        found = _judge_import(text, planned)
        if found is not None:
            return found
    if kind == "AttributeError":
        found = _judge_attribute(text, planned)
        if found is not None:
            return found
    if case.phase == "collection":
        if case.error_type == "build failed" and (match := _GO_UNDEFINED.search(text)):
            if planned.provides_module(case.id) or planned.provides_name(match.group("name")):
                return Judgement(True, f"{match.group(0)} (planned package)")
            return Judgement(False, f"{match.group(0)}, which no planned file provides")
        return Judgement(False, f"the test file does not load: {case.line()}")
    if kind in {"AssertionError", "NotImplementedError", "test failed"}:
        return Judgement(True, kind)
    if kind == "Failed" and case.message.startswith(("DID NOT RAISE", "DID NOT WARN")):
        return Judgement(True, case.message)
    if kind == "TypeError":
        for pattern, group in (
            (_SIGNATURE, "func"),
            (_JS_NOT_FUNCTION, "name"),
        ):
            if (match := pattern.search(text)) and planned.provides_name(match.group(group)):
                return Judgement(True, f"{match.group(group)} lacks the new behaviour")
    if kind == "TypeError" and _JS_INSTANCEOF_UNDEFINED.search(text):
        # `x instanceof Missing` where Missing is an export the module lacks: the message
        # names no symbol, so any planned JS/TS file is taken to provide it.
        if any(f.endswith(_JS_SUFFIXES) for f in planned.files):
            return Judgement(True, "instanceof of an export a planned file will provide")
        return Judgement(False, f"instanceof of something no planned file provides: {case.line()}")
    no_export = _JS_NO_EXPORT.search(text) if kind == "SyntaxError" else None
    if no_export and (planned.provides_name(no_export.group("name")) or planned.modules):
        match = no_export
        return Judgement(True, f"missing export {match.group('name')}")
    if (match := _JS_NO_MODULE.search(text)) and planned.provides_module(
        match.group("name").lstrip("./").rsplit(".", 1)[0]
    ):
        return Judgement(True, f"imports the planned module {match.group('name')}")
    if "expect(" in case.message or "ERR_ASSERTION" in text:
        return Judgement(True, "assertion")
    return Judgement(False, f"fails for another reason: {case.line()}")


@dataclass(frozen=True)
class Problem:
    """One reason a gate refuses, with every test id it concerns."""

    kind: str
    """``unparsable``, ``no_report``, ``no_new_tests``, ``wrong_reason``,
    ``already_passes``, ``skipped``, ``not_run``, ``broken_existing``, ``failing``."""
    ids: tuple[str, ...]
    lines: tuple[str, ...] = ()
    """Per-id explanations (same order as ``ids``), bounded when rendered."""
    summary: str = ""

    def render(self) -> str:
        """A bounded paragraph: the summary, then a handful of ids with their reasons."""
        head = f"{self.summary} ({len(self.ids)})" if self.ids else self.summary
        if not self.lines:
            return bounded(f"{head}: {name_ids(self.ids)}" if self.ids else head, LINE_LIMIT * 2)
        shown = [f"  - {bounded(line, LINE_LIMIT)}" for line in self.lines[:IDS_SHOWN]]
        rest = len(self.lines) - len(shown)
        if rest > 0:
            shown.append(f"  - and {rest} more")
        return "\n".join([head + ":", *shown])


@dataclass(frozen=True)
class CaseVerdict:
    """A gate's decision over a whole report."""

    accepted: bool
    reason: str
    """Bounded (:data:`REASON_LIMIT`): safe to print, store and send to a model."""
    problems: tuple[Problem, ...] = ()
    new_failing: tuple[str, ...] = ()
    """New or changed tests failing for the right reason."""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """The problems' summaries on one line (no ids): for reports and run lists."""
        if self.accepted:
            return self.reason.split("\n", 1)[0]
        return "; ".join(p.summary for p in self.problems)


def _reason(problems: Sequence[Problem], accepted_text: str) -> str:
    if not problems:
        return bounded(accepted_text, REASON_LIMIT)
    return bounded("\n".join(p.render() for p in problems), REASON_LIMIT)


def judge_red_cases(
    report: TestReport,
    changed: ChangedTests,
    planned: PlannedCode,
    preexisting: Iterable[str] = (),
) -> CaseVerdict:
    """Red: new/changed tests fail because the behaviour is missing; the rest still pass.

    ``preexisting`` are tests that failed at the base and that the user chose to leave
    out of the gates. Unchanged tests of a file that does not import because it needs a
    planned symbol cannot run yet; they are not counted as broken.
    """
    skip = set(preexisting)
    problems: list[Problem] = []
    if changed.unparsable:
        files = sorted(changed.unparsable)
        problems.append(
            Problem(
                "unparsable",
                tuple(files),
                tuple(f"{f}: {changed.unparsable[f]}" for f in files),
                "the test files do not compile",
            )
        )
    if not report.structured:
        first = first_error_line(report.output)
        problems.append(
            Problem(
                "no_report",
                (),
                summary=f"existing tests fail: the test run wrote no report (exit "
                f"{report.exit_code}) with the new tests present: " + bounded(first, LINE_LIMIT),
            )
        )
        return CaseVerdict(False, _reason(problems, ""), tuple(problems))
    wrong: list[tuple[str, str]] = []
    passing: list[str] = []
    skipped: list[str] = []
    broken: list[tuple[str, str]] = []
    right: list[str] = []
    file_verdicts: dict[str, Judgement] = {}
    seen: set[str] = set()
    for case in report.cases:
        if "::" not in case.id:  # a file or package that failed to load
            if case.outcome not in {"failed", "error"} or case.id in skip:
                continue
            if case.id in changed.unparsable:
                continue  # reported as not compiling
            judgement = missing_behaviour(case, planned)
            file_verdicts[case.id] = judgement
            if changed.in_file(case.id):
                continue  # judged with the file's new functions, below
            if judgement.right:
                # A Python file whose existing tests need a planned symbol cannot run
                # yet (not broken); a Go package or JS file that does not build because
                # planned code is missing holds the new tests.
                if not case.id.endswith(".py"):
                    right.append(case.id)
                continue
            broken.append((case.id, f"{case.id}: {judgement.why}"))
            continue
        seen.add(changed.function_of(case.id) or case.function_id)
        new = changed.is_new_or_changed(case.id)
        if new:
            if case.outcome == "passed":
                passing.append(case.id)
            elif case.outcome == "skipped":
                skipped.append(case.id)
            else:
                judgement = missing_behaviour(case, planned)
                if judgement.right:
                    right.append(case.id)
                else:
                    wrong.append((case.id, f"{case.id}: {judgement.why}"))
        elif case.outcome in {"failed", "error"} and not (
            case.id in skip or case.function_id in skip
        ):
            broken.append((case.id, case.line()))
    not_run: list[str] = []
    for function in sorted(changed.functions - seen):
        path = function.split("::", 1)[0]
        verdict = file_verdicts.get(path)
        if verdict is None:
            not_run.append(function)
        elif verdict.right:
            right.append(function)
        else:
            wrong.append((function, f"{function}: {verdict.why}"))
    nothing = not right and not wrong and not passing and not skipped and not not_run
    if nothing and not changed.unparsable:
        problems.append(
            Problem(
                "no_new_tests",
                (),
                summary="no new or changed test was found: add test functions to test files "
                "(test_*.py / *_test.py, functions named test_*)",
            )
        )
    if wrong:
        problems.append(
            Problem(
                "wrong_reason",
                tuple(i for i, _ in wrong),
                tuple(line for _, line in wrong),
                "new tests fail for a reason other than the missing behaviour",
            )
        )
    if passing:
        problems.append(
            Problem(
                "already_passes",
                tuple(passing),
                summary="new tests already pass, so they do not pin the missing behaviour",
            )
        )
    if skipped:
        problems.append(
            Problem("skipped", tuple(skipped), summary="new tests are skipped: they pin nothing")
        )
    if not_run:
        problems.append(
            Problem(
                "not_run",
                tuple(not_run),
                summary="new tests were not run by the test command (check names and paths)",
            )
        )
    if broken:
        problems.append(
            Problem(
                "broken_existing",
                tuple(i for i, _ in broken),
                tuple(line for _, line in broken),
                "existing tests fail with the new tests present; they must keep passing",
            )
        )
    accepted = not problems
    text = (
        f"{len(right)} new or changed tests fail because the behaviour is missing "
        f"({name_ids(right)}); {report.counts['passed']} other tests pass"
    )
    return CaseVerdict(
        accepted, _reason(problems, text), tuple(problems), tuple(right), report.counts
    )


def judge_green_cases(report: TestReport, preexisting: Iterable[str] = ()) -> CaseVerdict:
    """Green: every test passes, except ``preexisting`` failures left out by the user."""
    skip = set(preexisting)
    if not report.structured:
        ok = report.exit_code == 0 and not report.timed_out
        reason = "the tests pass" if ok else f"the tests fail (exit {report.exit_code})"
        return CaseVerdict(ok, reason, counts=report.counts)
    failing = [
        c
        for c in report.cases
        if c.outcome in {"failed", "error"} and c.id not in skip and c.function_id not in skip
    ]
    if report.timed_out:
        problem = Problem("failing", (), summary="the tests timed out")
        return CaseVerdict(False, problem.render(), (problem,), counts=report.counts)
    if failing:
        problem = Problem(
            "failing",
            tuple(c.id for c in failing),
            tuple(c.line() for c in failing),
            "tests fail",
        )
        return CaseVerdict(False, _reason([problem], ""), (problem,), counts=report.counts)
    return CaseVerdict(True, f"{report.counts['passed']} tests pass", counts=report.counts)
