"""A Go module and a JS package through preflight, the red gate and the green gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestra.repository import (
    coverage_plan,
    detect_environment,
    measure_coverage,
    preflight,
)
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits
from tests.repository.fixtures import gates_in

LIMITS = CommandLimits(timeout_s=180, memory_mb=4096)

GO_CALC = "package calc\n\nfunc Add(a, b int) int { return a + b }\n"
GO_TEST = (
    'package calc\n\nimport "testing"\n\n'
    'func TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal("add")\n\t}\n}\n'
)
GO_NEW_TEST = '\nfunc TestMul(t *testing.T) {\n\tif Mul(2, 3) != 6 {\n\t\tt.Fatal("mul")\n\t}\n}\n'


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain (golang-go)")
def test_go_module_red_then_green(tmp_path: Path) -> None:
    repo = create_repository(
        tmp_path / "gomod",
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": GO_CALC,
            "calc_test.go": GO_TEST,
        },
    )
    gates = gates_in(tmp_path, repo, LIMITS)
    assert gates.baseline.test_ids == {"example.com/calc::TestAdd"}
    with (repo / "calc_test.go").open("a") as handle:
        handle.write(GO_NEW_TEST)
    red = gates.red(["calc.go"])
    assert red.verdict.accepted, red.verdict.reason
    assert red.verdict.new_failing == ("example.com/calc::TestMul",)
    # A test file that calls something no planned file will provide is refused.
    wrong = gates.red(["other/x.go"])
    assert not wrong.verdict.accepted
    assert "undefined: Mul" in wrong.verdict.reason
    (repo / "calc.go").write_text(GO_CALC + "\nfunc Mul(a, b int) int { return a * b }\n")
    green = gates.green()
    assert green.verdict.accepted, green.verdict.reason
    assert {c.id for c in green.report.cases} == {
        "example.com/calc::TestAdd",
        "example.com/calc::TestMul",
    }
    data, reason = measure_coverage(
        coverage_plan(gates.env, tmp_path / "cov"),
        gates.env,
        repo,
        home=tmp_path / "h",
        limits=LIMITS,
    )
    assert data is not None, reason
    assert 5 in data.executed["calc.go"]


NODE_TEST = """const test = require('node:test');
const assert = require('node:assert');
const calc = require('../calc.js');

test('adds', () => { assert.strictEqual(calc.add(1, 2), 3); });
"""


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_node_test_package_red_then_green(tmp_path: Path) -> None:
    package = {"name": "calc", "version": "1.0.0", "scripts": {"test": "node --test"}}
    repo = create_repository(
        tmp_path / "js",
        {
            "package.json": json.dumps(package),
            "calc.js": "exports.add = (a, b) => a + b;\n",
            "test/calc.test.js": NODE_TEST,
        },
    )
    gates = gates_in(tmp_path, repo, LIMITS)
    assert gates.env.runner == "node"
    assert gates.baseline.test_ids == {"test::adds"}
    with (repo / "test/calc.test.js").open("a") as handle:
        handle.write("test('doubles', () => { assert.strictEqual(calc.double(2), 4); });\n")
        handle.write("test('triples', () => { assert.strictEqual(calc.add(1, 1), 3); });\n")
    red = gates.red(["calc.js"])
    assert red.verdict.accepted, red.verdict.reason
    assert set(red.verdict.new_failing) == {"test::doubles", "test::triples"}
    (repo / "calc.js").write_text(
        "exports.add = (a, b) => a + b;\nexports.double = (a) => 2 * a;\n"
    )
    (repo / "test/calc.test.js").write_text(
        NODE_TEST + "test('doubles', () => { assert.strictEqual(calc.double(2), 4); });\n"
    )
    green = gates.green()
    assert green.verdict.accepted, green.verdict.reason


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_worktree_sees_the_checkouts_node_modules(tmp_path: Path) -> None:
    from orchestra.tools import Workspace

    package = {"name": "app", "version": "1.0.0", "scripts": {"test": "node --test"}}
    repo = create_repository(
        tmp_path / "app",
        {
            ".gitignore": "node_modules/\n",
            "package.json": json.dumps(package),
            "test/app.test.js": (
                "const test = require('node:test');\nconst assert = require('node:assert');\n"
                "const tiny = require('tinylib');\n\n"
                "test('uses an installed package', () => { assert.strictEqual(tiny(), 42); });\n"
            ),
        },
    )
    lib = repo / "node_modules" / "tinylib"
    lib.mkdir(parents=True)
    (lib / "package.json").write_text('{"name": "tinylib", "version": "1.0.0"}')
    (lib / "index.js").write_text("module.exports = () => 42;\n")
    ws = Workspace.create(repo, tmp_path / "wt", "orchestra/t")
    env = detect_environment(repo, environ={})
    kwargs = {"home": tmp_path / "h", "limits": LIMITS, "report_dir": tmp_path / "rep"}
    baseline = preflight(env, ws.root, **kwargs)  # type: ignore[arg-type]
    assert baseline.test_ids == {"test::uses an installed package"}
    assert baseline.counts["passed"] == 1
    assert (ws.root / "node_modules" / "tinylib").is_symlink()
    assert ws.uncommitted_files() == []
