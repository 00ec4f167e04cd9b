"""Changed-line coverage of a Go module and a ``node --test`` package, measured with the
tests' own command in their environment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestra.repository import changed_line_coverage, coverage_plan, detect_environment
from orchestra.repository.coverage_data import read_go_profile
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits
from tests.repository.fixtures import commit_files, git

LIMITS = CommandLimits(timeout_s=180, memory_mb=4096)

GO_NEG = """package calc

func Add(a, b int) int { return a + b }

// Neg negates a { brace in a comment.
func Neg(a int) int {
\tif a == 0 {
\t\treturn 0
\t}
\treturn -a
}
"""


def test_go_profile_blocks_count_only_their_code_lines(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/calc\n")
    (tmp_path / "calc.go").write_text(GO_NEG)
    profile = tmp_path / "cover.out"
    profile.write_text(
        "mode: set\n"
        "example.com/calc/calc.go:3.24,3.40 1 1\n"
        "example.com/calc/calc.go:6.21,7.12 1 1\n"
        "example.com/calc/calc.go:10.2,10.11 1 1\n"
        "example.com/calc/calc.go:7.12,9.3 1 0\n"
    )
    data = read_go_profile(profile, tmp_path)
    assert data.executed["calc.go"] == {3, 7, 10}
    assert data.missing["calc.go"] == {8}


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain (golang-go)")
def test_go_changed_line_coverage(tmp_path: Path) -> None:
    repo = create_repository(
        tmp_path / "gomod",
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
            "calc_test.go": 'package calc\n\nimport "testing"\n\n'
            "func TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal()\n\t}\n}\n",
        },
    )
    base = git(repo, "rev-parse", "HEAD").strip()
    neg_test = "\nfunc TestNeg(t *testing.T) {\n\tif Neg(2) != -2 {\n\t\tt.Fatal()\n\t}\n}\n"
    commit_files(
        repo,
        {"calc.go": GO_NEG, "calc_test.go": (repo / "calc_test.go").read_text() + neg_test},
        "neg",
    )
    env = detect_environment(repo, environ={})
    result = changed_line_coverage(
        env, repo, base, home=tmp_path / "h", limits=LIMITS, data_dir=tmp_path / "cov"
    )
    assert result["status"] == "measured", result
    assert result["tool"] == "go cover"
    # Changed: the comment (not code), the func line (its "{" only), if, return 0,
    # "}", return -a, "}": three lines hold statements; the branch is not run.
    assert result["files"] == {"calc.go": {"changed_executable": 3, "covered": 2, "missing": [8]}}
    assert result["percent"] == 66.7


CALC_NEG = """exports.add = (a, b) => a + b;

// neg negates; a { in a comment
exports.neg = (a) => {
  if (a === 0) {
    return 0;
  }
  const label = `neg ${a}`;
  return -a;
};
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_node_changed_line_coverage(tmp_path: Path) -> None:
    package = {"name": "calc", "version": "1.0.0", "scripts": {"test": "node --test"}}
    test_js = "const test = require('node:test');\nconst assert = require('node:assert');\n"
    test_js += "const calc = require('../calc.js');\n\n"
    test_js += "test('adds', () => { assert.strictEqual(calc.add(1, 2), 3); });\n"
    repo = create_repository(
        tmp_path / "js",
        {
            "package.json": json.dumps(package),
            "calc.js": "exports.add = (a, b) => a + b;\n",
            "test/calc.test.js": test_js,
        },
    )
    base = git(repo, "rev-parse", "HEAD").strip()
    neg_test = "test('negates', () => { assert.strictEqual(calc.neg(2), -2); });\n"
    commit_files(repo, {"calc.js": CALC_NEG, "test/calc.test.js": test_js + neg_test}, "neg")
    env = detect_environment(repo, environ={})
    assert coverage_plan(env, tmp_path / "cov").tool == "node (V8)"
    result = changed_line_coverage(
        env, repo, base, home=tmp_path / "h", limits=LIMITS, data_dir=tmp_path / "cov"
    )
    assert result["status"] == "measured", result
    # exports.neg =, if, return 0, const label, return -a: the early return is not run.
    assert result["files"] == {"calc.js": {"changed_executable": 5, "covered": 4, "missing": [6]}}
    assert result["percent"] == 80.0


def test_c8_json_counts_statements_on_code_lines(tmp_path: Path) -> None:
    from orchestra.repository.coverage_data import read_istanbul_json

    (tmp_path / "calc.js").write_text(CALC_NEG)
    # The shape c8 10's --reporter=json writes: one statement per line, absolute paths.
    statements = {str(n): {"start": {"line": n + 1, "column": 0}} for n in range(10)}
    counts = {str(n): 0 if n in {5, 6} else 1 for n in range(10)}
    for n in range(10):
        statements[str(n)]["end"] = {"line": n + 1, "column": 1}
    report = tmp_path / "coverage-final.json"
    report.write_text(
        json.dumps(
            {
                str(tmp_path / "calc.js"): {"statementMap": statements, "s": counts},
                str(tmp_path / "node_modules/x/i.js"): {"statementMap": statements, "s": counts},
                "/elsewhere/y.js": {"statementMap": statements, "s": counts},
            }
        )
    )
    data = read_istanbul_json(report, tmp_path)
    assert set(data.executed) == {"calc.js"}
    assert data.executed["calc.js"] == {1, 4, 5, 8, 9}
    assert data.missing["calc.js"] == {6}
