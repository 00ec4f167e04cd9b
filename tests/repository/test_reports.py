"""Per-case results read from real runner reports."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from orchestra.repository import detect_environment
from orchestra.repository.reports import (
    CaseResult,
    TestReport,
    bounded,
    merge_cases,
    parse_go_test_json,
    parse_junit,
    strip_parameters,
)
from orchestra.repository.runner import run_test_suite
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits

LIMITS = CommandLimits(timeout_s=90, memory_mb=2048)

MIXED = {
    "tests/test_a.py": """import pytest


class TestK:
    def test_m(self):
        assert 1 == 2


def test_ni():
    raise NotImplementedError


def test_attr():
    import json
    json.nope


@pytest.fixture
def fx():
    raise RuntimeError("fixture boom")


def test_fx(fx):
    pass


def test_missing(missingfix):
    pass


@pytest.mark.parametrize("x", [1, 2])
def test_p(x):
    assert x == 1


def test_raises():
    with pytest.raises(ValueError):
        pass


def test_skip():
    pytest.skip("no")


def test_name():
    undefined_name
""",
    "tests/test_b.py": "from json import nothere\n\n\ndef test_x():\n    pass\n",
}


@pytest.fixture(scope="module")
def mixed_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CaseResult]:
    tmp = tmp_path_factory.mktemp("mixed")
    repo = create_repository(tmp / "r", MIXED)
    env = detect_environment(repo, environ={})
    report = run_test_suite(env, repo, home=tmp / "h", limits=LIMITS, report_dir=tmp / "rep")
    assert report.structured, report.output
    return {case.id: case for case in report.cases}


def test_ids_are_pytest_node_ids(mixed_report: dict[str, CaseResult]) -> None:
    assert "tests/test_a.py::TestK::test_m" in mixed_report
    assert "tests/test_a.py::test_p[1]" in mixed_report
    assert mixed_report["tests/test_a.py::test_p[1]"].outcome == "passed"


@pytest.mark.parametrize(
    ("case", "outcome", "phase", "error_type", "message"),
    [
        ("tests/test_a.py::TestK::test_m", "failed", "call", "AssertionError", "assert 1 == 2"),
        ("tests/test_a.py::test_ni", "failed", "call", "NotImplementedError", ""),
        (
            "tests/test_a.py::test_attr",
            "failed",
            "call",
            "AttributeError",
            "module 'json' has no attribute 'nope'",
        ),
        ("tests/test_a.py::test_fx", "error", "setup", "RuntimeError", "fixture boom"),
        ("tests/test_a.py::test_missing", "error", "setup", "FixtureLookupError", None),
        ("tests/test_a.py::test_p[2]", "failed", "call", "AssertionError", "assert 2 == 1"),
        ("tests/test_a.py::test_raises", "failed", "call", "Failed", "DID NOT RAISE ValueError"),
        ("tests/test_a.py::test_skip", "skipped", "call", "", "no"),
        ("tests/test_a.py::test_name", "failed", "call", "NameError", None),
        ("tests/test_b.py", "error", "collection", "ImportError", "cannot import name 'nothere'"),
    ],
)
def test_case_outcomes_types_and_messages(
    mixed_report: dict[str, CaseResult],
    case: str,
    outcome: str,
    phase: str,
    error_type: str,
    message: str | None,
) -> None:
    got = mixed_report[case]
    assert (got.outcome, got.phase, got.error_type) == (outcome, phase, error_type)
    if message is not None:
        assert got.message.startswith(message), got.message


def test_collection_errors_do_not_stop_the_other_files(
    mixed_report: dict[str, CaseResult],
) -> None:
    assert len(mixed_report) == 11


def test_report_options_survive_a_sh_c_command(tmp_path: Path) -> None:
    from dataclasses import replace

    repo = create_repository(tmp_path / "r", {"tests/test_ok.py": "def test_ok():\n    pass\n"})
    env = detect_environment(repo, environ={})
    wrapped = replace(env, command=("sh", "-c", f"{sys.executable} -m pytest -q"))
    report = run_test_suite(wrapped, repo, home=tmp_path / "h", limits=LIMITS, report_dir=tmp_path)
    assert [c.id for c in report.cases] == ["tests/test_ok.py::test_ok"]
    assert report.passed


def test_merge_keeps_the_worst_result_per_id() -> None:
    cases = [CaseResult("a::t", "failed"), CaseResult("a::t", "error", "teardown")]
    assert merge_cases(cases) == [CaseResult("a::t", "error", "teardown")]
    assert merge_cases(reversed(cases)) == [CaseResult("a::t", "error", "teardown")]


def test_strip_parameters() -> None:
    assert strip_parameters("a.py::t[x-1]") == "a.py::t"
    assert strip_parameters("a.py::C::t") == "a.py::C::t"


def test_bounded_never_exceeds_its_limit() -> None:
    assert len(bounded("x" * 1000, 50)) == 50
    assert bounded("short", 50) == "short"


def test_report_passed_needs_clean_exit_and_no_failed_case() -> None:
    assert TestReport(exit_code=5).passed
    assert not TestReport(exit_code=1, structured=False).passed
    assert not TestReport([CaseResult("a::t", "failed")], exit_code=0).passed


VITEST_JUNIT = """<?xml version="1.0" encoding="UTF-8" ?>
<testsuites name="vitest tests" tests="2" failures="1" errors="0">
  <testsuite name="test/calc.test.js" tests="2" failures="1">
    <testcase classname="test/calc.test.js" name="calc &gt; adds" time="0.001"></testcase>
    <testcase classname="test/calc.test.js" name="calc &gt; doubles" time="0.002">
      <failure message="double is not a function" type="TypeError">
TypeError: double is not a function
 ❯ test/calc.test.js:9:12
      </failure>
    </testcase>
  </testsuite>
</testsuites>
"""


def test_vitest_junit() -> None:
    cases = {c.id: c for c in parse_junit(VITEST_JUNIT)}
    assert cases["test/calc.test.js::calc > adds"].outcome == "passed"
    failed = cases["test/calc.test.js::calc > doubles"]
    assert (failed.outcome, failed.error_type, failed.message) == (
        "failed",
        "TypeError",
        "double is not a function",
    )


def _events(*events: dict[str, str]) -> str:
    return "\n".join(json.dumps(e) for e in events)


def test_go_test_json_cases_and_build_failures() -> None:
    stream = _events(
        {"Action": "run", "Package": "m/calc", "Test": "TestAdd"},
        {"Action": "output", "Package": "m/calc", "Test": "TestAdd", "Output": "ok\n"},
        {"Action": "pass", "Package": "m/calc", "Test": "TestAdd"},
        {"Action": "run", "Package": "m/calc", "Test": "TestSub"},
        {
            "Action": "output",
            "Package": "m/calc",
            "Test": "TestSub",
            "Output": "    calc_test.go:12: got 1, want 2\n",
        },
        {"Action": "fail", "Package": "m/calc", "Test": "TestSub"},
        {"Action": "fail", "Package": "m/calc"},
        {"Action": "output", "Package": "m/io", "Output": "FAIL\tm/io [build failed]\n"},
        {"Action": "fail", "Package": "m/io"},
    )
    stderr = "# m/io\nio/io_test.go:5:9: undefined: Shout\n"
    cases = {c.id: c for c in parse_go_test_json(stream, stderr)}
    assert cases["m/calc::TestAdd"].outcome == "passed"
    assert cases["m/calc::TestSub"].message == "calc_test.go:12: got 1, want 2"
    build = cases["m/io"]
    assert (build.outcome, build.phase, build.message) == (
        "error",
        "collection",
        "undefined: Shout",
    )
    assert "m/calc" not in cases


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain (golang-go)")
def test_real_go_module(tmp_path: Path) -> None:
    repo = create_repository(
        tmp_path / "gomod",
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
            "calc_test.go": (
                'package calc\n\nimport "testing"\n\n'
                "func TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n"
                '\t\tt.Fatal("add")\n\t}\n}\n\n'
                "func TestBad(t *testing.T) {\n\tif Add(1, 1) != 3 {\n"
                '\t\tt.Errorf("got %d", Add(1, 1))\n\t}\n}\n'
            ),
        },
    )
    env = detect_environment(repo, environ={})
    report = run_test_suite(env, repo, home=tmp_path / "h", limits=LIMITS, report_dir=tmp_path)
    cases = {c.id: c for c in report.cases}
    assert cases["example.com/calc::TestAdd"].outcome == "passed", report.output
    assert cases["example.com/calc::TestBad"].outcome == "failed"
    assert "got 2" in cases["example.com/calc::TestBad"].message
