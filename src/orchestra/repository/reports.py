"""Per-test-case results from a runner's structured report.

Gates judge test *cases*: pytest's JUnit XML (``-o junit_family=xunit1`` so each case
names its file), the JUnit XML of vitest, jest (``jest-junit``) and ``node --test``, and
``go test -json``. Each case has an id in the runner's own form
(``tests/test_a.py::TestK::test_m``, ``example.com/m/calc::TestAdd``,
``test/a.test.js::adds``), an outcome, the phase it failed in, the exception type and the
message. Nothing here searches a whole output for a string.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

Outcome = Literal["passed", "failed", "error", "skipped"]
Phase = Literal["call", "setup", "teardown", "collection"]

MESSAGE_LIMIT = 300
"""Characters of a case's message kept."""
DETAIL_LIMIT = 1500
"""Characters of a case's error lines kept."""

_SEVERITY = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
_LOCATION_TYPE = re.compile(r":\d+: (?P<type>[A-Za-z_][\w.]*)\s*$")
_E_LINE = re.compile(r"^E\s+(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?$")
_MESSAGE_TYPE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Failed)):")


def bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 5)] + " [..]"


@dataclass(frozen=True)
class CaseResult:
    """One test case's result."""

    id: str
    """The runner's id: ``path::Class::test[param]``, ``package::TestName``, ``file::name``."""
    outcome: Outcome
    phase: Phase = "call"
    """Where it failed: in the test, a fixture's setup/teardown, or collecting the file."""
    error_type: str = ""
    """Exception type (``AssertionError``, ``ImportError``, ``build failed``), when failed."""
    message: str = ""
    """The failure's one-line message, bounded."""
    detail: str = ""
    """The error lines of the traceback (``E   ...``), bounded."""
    file: str | None = None

    @property
    def function_id(self) -> str:
        """The id without a parametrisation suffix (``test_f[1]`` -> ``test_f``)."""
        return strip_parameters(self.id)

    def line(self) -> str:
        """``id: Type: message`` on one bounded line."""
        what = f"{self.error_type}: {self.message}" if self.error_type else self.message
        return bounded(f"{self.id}: {what}".strip().rstrip(":"), 240)


def strip_parameters(test_id: str) -> str:
    """``a.py::test_f[x-1]`` -> ``a.py::test_f``."""
    if test_id.endswith("]") and "[" in test_id:
        return test_id[: test_id.index("[")]
    return test_id


@dataclass
class TestReport:
    """A test run's cases, or why there are none."""

    __test__ = False  # not a pytest test class

    cases: list[CaseResult] = field(default_factory=list)
    exit_code: int = 0
    timed_out: bool = False
    structured: bool = True
    """Whether a structured report was read; ``False`` means only the exit code is known."""
    output: str = ""
    """The end of the combined output, bounded, for diagnosis."""

    def by_outcome(self, *outcomes: Outcome) -> list[CaseResult]:
        """Cases with one of ``outcomes``."""
        return [c for c in self.cases if c.outcome in outcomes]

    @property
    def counts(self) -> dict[str, int]:
        """Cases per outcome."""
        out = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for case in self.cases:
            out[case.outcome] += 1
        return out

    @property
    def passed(self) -> bool:
        """No case failed and the runner exited cleanly (pytest's 5 = nothing collected)."""
        if self.timed_out:
            return False
        if self.by_outcome("failed", "error"):
            return False
        return self.exit_code in (0, 5) if self.structured else self.exit_code == 0


def merge_cases(cases: Iterable[CaseResult]) -> list[CaseResult]:
    """One result per id, keeping the worst (pytest reports a teardown error separately)."""
    out: dict[str, CaseResult] = {}
    for case in cases:
        seen = out.get(case.id)
        if seen is None or _SEVERITY[case.outcome] > _SEVERITY[seen.outcome]:
            out[case.id] = case
    return list(out.values())


def error_lines(text: str) -> list[str]:
    """pytest's ``E   ...`` lines of a traceback, without the prefix."""
    return [line[1:].strip() for line in text.splitlines() if _E_LINE.match(line)]


def exception_type(message: str, text: str) -> str:
    """The exception type of a failure, from its traceback text or its message."""
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and (match := _LOCATION_TYPE.search(lines[-1])):
        return match.group("type")
    for line in reversed(lines):
        e_line = _E_LINE.match(line)
        if e_line and e_line.group("msg") is not None:
            return e_line.group("type")
    if "fixture '" in message and "not found" in message:
        return "FixtureLookupError"
    if match := _MESSAGE_TYPE.match(message):
        return match.group("type")
    return ""


def _pytest_message(error_type: str, message: str, text: str) -> str:
    """The line that says what went wrong: ``No module named 'x'``, ``assert 1 == 2``."""
    for line in error_lines(text):
        if error_type and line.startswith(error_type + ":"):
            return line[len(error_type) + 1 :].strip()
    for prefix in ("failed on setup with ", "failed on teardown with "):
        if message.startswith(prefix):
            message = message[len(prefix) :].strip('"')
    if error_type and message.startswith(error_type + ":"):
        message = message[len(error_type) + 1 :].strip()
    return message.splitlines()[0] if message else ""


def _pytest_id(case: ET.Element) -> tuple[str, str | None]:
    name = case.get("name", "")
    classname = case.get("classname", "")
    path = case.get("file")
    if not classname:
        # A collection error: the case is the module itself.
        return (path or name.replace(".", "/") + ".py"), path
    if path and path.endswith(".py"):
        module = path[:-3].replace("/", ".")
        rest = classname[len(module) :].lstrip(".") if classname.startswith(module) else ""
        parts = [path, *([p for p in rest.split(".") if p]), name]
        return "::".join(parts), path
    return f"{classname}::{name}", path


def parse_pytest_junit(xml_text: str) -> list[CaseResult]:
    """Cases from pytest's JUnit XML (xunit1 family, so each case carries its file)."""
    root = ET.fromstring(xml_text)  # noqa: S314 - written by the runner in our sandbox
    cases: list[CaseResult] = []
    for element in root.iter("testcase"):
        case_id, path = _pytest_id(element)
        outcome: Outcome = "passed"
        phase: Phase = "call"
        error_type = message = detail = ""
        for child in element:
            if child.tag not in {"failure", "error", "skipped"}:
                continue
            raw = child.get("message") or ""
            text = child.text or ""
            if child.tag == "skipped":
                outcome, message = "skipped", raw
                break
            outcome = "failed" if child.tag == "failure" else "error"
            if child.tag == "error":
                if raw == "collection failure":
                    phase = "collection"
                elif raw.startswith("failed on teardown"):
                    phase = "teardown"
                else:
                    phase = "setup"
            error_type = (
                child.get("type", "")
                if child.get("type", "")
                not in {
                    "",
                    "pytest.skip",
                }
                else exception_type(raw, text)
            )
            message = _pytest_message(error_type, raw, text)
            detail = "\n".join(error_lines(text)) or text[-DETAIL_LIMIT:]
            break
        cases.append(
            CaseResult(
                id=case_id,
                outcome=outcome,
                phase=phase,
                error_type=error_type,
                message=bounded(message, MESSAGE_LIMIT),
                detail=bounded(detail, DETAIL_LIMIT),
                file=path,
            )
        )
    return merge_cases(cases)


def parse_junit(xml_text: str) -> list[CaseResult]:
    """Cases from the JUnit XML of vitest, jest-junit or ``node --test``.

    A case's id is its file (``file`` attribute, or a ``classname`` that is a path) and its
    name; ``node --test`` names no file, so its ids are the enclosing suites and the name.
    """
    return _parse_junit_root(ET.fromstring(xml_text))  # noqa: S314 - written in our sandbox


JEST_JUNIT_ENV: dict[str, str] = {
    "JEST_JUNIT_ADD_FILE_ATTRIBUTE": "true",
    "JEST_JUNIT_CLASSNAME": "{classname}",
    "JEST_JUNIT_TITLE": "{title}",
    "JEST_JUNIT_ANCESTOR_SEPARATOR": " > ",
    "JEST_JUNIT_REPORT_TEST_SUITE_ERRORS": "true",
}
"""jest-junit's settings for a report Orchestra can read: each case names its file, its
``describe`` chain (``classname``, joined by `` > ``) and its own title; a file that fails
to run is reported too (by default it vanishes from the report)."""

_JEST_SUITE_FAILED = "Test suite failed to run"


def parse_jest_junit(xml_text: str) -> list[CaseResult]:
    """Cases from jest-junit's report written with :data:`JEST_JUNIT_ENV`.

    Ids are vitest's: ``file::Outer > Inner > name``; a file that failed to run is one
    case whose id is the file, failed in collection.
    """
    root = ET.fromstring(xml_text)  # noqa: S314 - written by the runner in our sandbox
    failed_files: set[str] = set()
    for case in root.iter("testcase"):
        chain = case.get("classname", "")
        if chain == _JEST_SUITE_FAILED:
            failed_files.add(case.get("file") or case.get("name") or "")
        elif chain:
            case.set("name", f"{chain} > {case.get('name', '')}")
    return [
        replace(c, id=c.file or c.id, phase="collection")
        if c.file in failed_files or c.id in failed_files
        else c
        for c in _parse_junit_root(root)
    ]


def _parse_junit_root(root: ET.Element) -> list[CaseResult]:
    cases: list[CaseResult] = []

    def walk(element: ET.Element, suites: list[str]) -> None:
        for child in element:
            if child.tag == "testsuite":
                walk(child, [*suites, child.get("name", "")])
            elif child.tag == "testcase":
                cases.append(_junit_case(child, suites))

    walk(root, [root.get("name", "")] if root.tag == "testsuite" else [])
    return merge_cases(cases)


def _junit_where(element: ET.Element, suites: list[str]) -> str:
    path = element.get("file")
    if path:
        return path
    classname = element.get("classname", "")
    if "/" in classname or classname.endswith((".js", ".ts", ".mjs", ".jsx", ".tsx")):
        return classname
    named = [s for s in suites if s]
    return " > ".join(named) if named else classname


def _junit_case(element: ET.Element, suites: list[str]) -> CaseResult:
    name = element.get("name", "")
    where = _junit_where(element, suites)
    outcome: Outcome = "passed"
    error_type = message = detail = ""
    for child in element:
        if child.tag == "skipped":
            outcome = "skipped"
            break
        if child.tag in {"failure", "error"}:
            outcome = "failed" if child.tag == "failure" else "error"
            raw = child.get("message") or ""
            text = child.text or ""
            declared = child.get("type") or ""
            if declared in {"", "testCodeFailure", "Error"}:
                cause = _JS_CAUSE.search(text)
                declared = cause.group("type") if cause else declared
            error_type = declared or exception_type(raw, "") or _js_type(text)
            message = raw or (text.strip().splitlines() or [""])[0]
            if error_type and message.startswith(error_type + ":"):
                message = message[len(error_type) + 1 :].strip()
            detail = text
            break
    return CaseResult(
        id=f"{where}::{name}" if where else name,
        outcome=outcome,
        error_type=error_type,
        message=bounded(message.splitlines()[0] if message else "", MESSAGE_LIMIT),
        detail=bounded(detail, DETAIL_LIMIT),
        file=element.get("file"),
    )


_JS_CAUSE = re.compile(r"cause: (?P<type>[A-Za-z_]\w*(?:Error|Exception))\b")
_JS_ERROR = re.compile(r"^\s*(?P<type>[A-Za-z_]\w*(?:Error|Exception))\b")


def _js_type(text: str) -> str:
    for line in text.splitlines():
        if match := _JS_ERROR.match(line):
            return match.group("type")
    return ""


_GO_OUTCOME: dict[str, Outcome] = {"pass": "passed", "fail": "failed", "skip": "skipped"}
_GO_BUILD_FAILED = re.compile(r"^FAIL\s+(?P<package>\S+)\s+\[(?:build|setup) failed\]")
_GO_UNDEFINED = re.compile(r"undefined: (?P<name>[\w.]+)")


def parse_go_test_json(stream: str, stderr: str = "") -> list[CaseResult]:
    """Cases from ``go test -json``; a package that does not build is one ``build`` case.

    Older Go versions print build errors on stderr rather than as JSON events; they are
    read from ``stderr`` for the package that failed to build.
    """
    outputs: dict[tuple[str, str], list[str]] = {}
    final: dict[tuple[str, str], str] = {}
    order: list[tuple[str, str]] = []
    failed_builds: list[str] = []
    for line in stream.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            # Go before 1.24 prints a package that does not build as plain text.
            if built := _GO_BUILD_FAILED.match(line):
                failed_builds.append(built.group("package"))
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        key = (str(event.get("Package", "")), str(event.get("Test", "")))
        if key not in outputs:
            outputs[key] = []
            order.append(key)
        action = event.get("Action")
        if action == "output":
            outputs[key].append(str(event.get("Output", "")))
        elif action in {"pass", "fail", "skip"}:
            final[key] = str(action)
        elif action == "build-output":
            outputs[key].append(str(event.get("Output", "")))
    cases: list[CaseResult] = []
    for package, test in order:
        action = final.get((package, test))
        text = "".join(outputs[(package, test)])
        if test:
            if action is None:
                continue
            outcome: Outcome = _GO_OUTCOME[action]
            lines = [ln.strip() for ln in text.splitlines() if "_test.go:" in ln]
            cases.append(
                CaseResult(
                    id=f"{package}::{test}",
                    outcome=outcome,
                    error_type="test failed" if outcome == "failed" else "",
                    message=bounded(lines[0] if lines else "", MESSAGE_LIMIT),
                    detail=bounded("\n".join(lines), DETAIL_LIMIT),
                )
            )
        elif action == "fail" and not any(c.id.startswith(package + "::") for c in cases):
            # The package did not build (or its TestMain failed): no test ran.
            loose = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("#")]
            cases.append(_go_build_failure(package, text + "\n" + "\n".join(loose)))
    for package in failed_builds:
        if not any(c.id == package or c.id.startswith(package + "::") for c in cases):
            cases.append(_go_build_failure(package, _go_stderr_block(stderr, package)))
    return cases


def _go_stderr_block(stderr: str, package: str) -> str:
    """The compiler's lines for ``package`` (after its ``# package`` header)."""
    out: list[str] = []
    inside = False
    for line in stderr.splitlines():
        if line.startswith("# "):
            inside = line[2:].split(" ", 1)[0] == package
            continue
        if inside:
            out.append(line)
    return "\n".join(out) or stderr


def _go_build_failure(package: str, text: str) -> CaseResult:
    """A package that did not build, as one case naming the undefined symbol if any."""
    undefined = _GO_UNDEFINED.search(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return CaseResult(
        id=package,
        outcome="error",
        phase="collection",
        error_type="build failed",
        message=bounded(
            undefined.group(0) if undefined else (lines[0] if lines else ""), MESSAGE_LIMIT
        ),
        detail=bounded("\n".join(lines), DETAIL_LIMIT),
    )
