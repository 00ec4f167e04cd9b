"""Real jest (with jest-junit) through preflight and the red gate: ids name the file and the
describe chain, so a *changed* existing jest test is judged changed, per test.

jest and jest-junit come from the Makefile's npm install (``.venv/node``; ``make unit`` puts
its ``.bin`` on ``PATH``). Without them these tests skip on a developer's machine and fail
where they are required (``CI`` or ``ORCHESTRA_REQUIRE_NODE_TOOLS`` set: ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from orchestra.repository import PreflightFailed
from orchestra.repository.reports import parse_jest_junit
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits
from tests.repository.fixtures import gates_in, preflight_in

LIMITS = CommandLimits(timeout_s=180, memory_mb=2048)

CALC_JS = "exports.add = (a, b) => a + b;\nexports.greet = (n) => 'hello ' + n;\n"
CALC_TEST = """const calc = require('../calc.js');

describe('calc', () => {
  test('adds', () => { expect(calc.add(1, 2)).toBe(3); });
  describe('words', () => {
    test('greets', () => { expect(calc.greet('ann')).toBe('hello ann'); });
  });
});

test('top level', () => { expect(calc.add(0, 0)).toBe(0); });
"""


def _jest_modules() -> Path:
    """The ``node_modules`` folder holding jest and jest-junit (the Makefile's install)."""
    jest = shutil.which("jest")
    modules = Path(jest).parent.parent if jest else None
    if modules is None or not (modules / "jest-junit").is_dir():
        reason = "jest and jest-junit are not installed (make .venv/.test installs them)"
        if os.environ.get("CI") or os.environ.get("ORCHESTRA_REQUIRE_NODE_TOOLS"):
            pytest.fail(f"{reason}: the jest tests are required here")
        pytest.skip(reason)
    return modules


def _jest_package(path: Path, modules: Path, script: str = "jest") -> Path:
    """A package tested by jest whose ``node_modules`` (git-ignored) links the real ones."""
    package = {"name": "calc", "version": "1.0.0", "scripts": {"test": script}}
    repo = create_repository(
        path,
        {
            ".gitignore": "node_modules\n",  # a link, so no trailing slash
            "package.json": json.dumps(package),
            "calc.js": CALC_JS,
            "test/calc.test.js": CALC_TEST,
        },
    )
    (repo / "node_modules").symlink_to(modules, target_is_directory=True)
    return repo


def test_jest_ids_name_the_file_and_describe_chain(tmp_path: Path) -> None:
    repo = _jest_package(tmp_path / "calc", _jest_modules())
    env, _, baseline = preflight_in(tmp_path, repo, LIMITS)
    assert env.runner == "jest"
    assert baseline.test_ids == {
        "test/calc.test.js::calc > adds",
        "test/calc.test.js::calc > words > greets",
        "test/calc.test.js::top level",
    }
    assert baseline.counts["passed"] == 3


def test_a_changed_existing_jest_test_is_judged_changed(tmp_path: Path) -> None:
    repo = _jest_package(tmp_path / "calc", _jest_modules())
    gates = gates_in(tmp_path, repo, LIMITS)
    # An existing test changes (its id stays the same); the others do not.
    (repo / "test/calc.test.js").write_text(
        CALC_TEST.replace("toBe('hello ann')", "toBe('Hello, ann!')")
    )
    red = gates.red(["calc.js"])
    assert red.verdict.accepted, red.verdict.reason
    assert red.verdict.new_failing == ("test/calc.test.js::calc > words > greets",)
    # Breaking an unchanged test of the same file is refused.
    (repo / "calc.js").write_text(CALC_JS.replace("a + b", "a - b"))
    broken = gates.red(["calc.js"])
    assert not broken.verdict.accepted
    assert [p.kind for p in broken.verdict.problems] == ["broken_existing"]
    assert set(broken.verdict.problems[0].ids) == {"test/calc.test.js::calc > adds"}


def test_a_baseline_whose_runner_wrote_no_report_stops_preflight(tmp_path: Path) -> None:
    """npm appends the report options to the script's last command (here ``echo``): jest
    passes without writing a report, and no gate could judge a test."""
    repo = _jest_package(tmp_path / "calc", _jest_modules(), script="jest && echo done")
    with pytest.raises(PreflightFailed) as failed:
        preflight_in(tmp_path, repo, LIMITS)
    assert "jest wrote no report" in failed.value.message
    assert "test_command" in (failed.value.hint or "")


def test_a_jest_file_that_fails_to_run_is_one_collection_error() -> None:
    xml = """<testsuites name="jest tests">
  <testsuite name="test/a.test.js" tests="1" errors="1" failures="0">
    <testcase classname="Test suite failed to run" name="test/a.test.js" time="0"
              file="test/a.test.js">
      <error message="Cannot find module '../stock' from 'test/a.test.js'">trace</error>
    </testcase>
  </testsuite>
  <testsuite name="b" tests="1">
    <testcase classname="" name="alone" time="0" file="test/b.test.js"/>
  </testsuite>
</testsuites>"""
    failed, alone = parse_jest_junit(xml)
    assert failed.id == "test/a.test.js"
    assert failed.phase == "collection"
    assert "Cannot find module" in failed.message
    assert alone.id == "test/b.test.js::alone"
