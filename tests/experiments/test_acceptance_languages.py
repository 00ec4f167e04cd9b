"""The hidden-test judge beyond pytest. On a Go module ``go test`` takes packages, not
files, so the hidden cases are those of the test functions the hidden ``_test.go`` files
define; a JS package's runner (here ``node --test``) is given the hidden files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestra.config import OrchestraConfig
from orchestra.demo import replay_arm
from orchestra.engine.agents import RosterAgents
from orchestra.experiments import (
    Arm,
    ExperimentSpec,
    checkout_base,
    judge,
    read_task,
    reference_passing,
    run_experiment,
    suite_from_git,
)
from orchestra.repository import resolve_environment
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits, git
from tests.repository.fixtures import commit_files

needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain")

GO_MOD = "module example.com/calc\n\ngo 1.19\n"
CALC = "package calc\n\n// Add adds.\nfunc Add(a, b int) int { return a + b }\n"
MUL = CALC + "\n// Mul multiplies.\nfunc Mul(a, b int) int { return a * b }\n"
TEST_ADD = (
    'package calc\n\nimport "testing"\n\n'
    'func TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal("add")\n\t}\n}\n'
)
TEST_MUL = (
    'package calc\n\nimport "testing"\n\n'
    'func TestMul(t *testing.T) {\n\tif Mul(2, 3) != 6 {\n\t\tt.Fatal("mul")\n\t}\n}\n\n'
    "func TestMulTable(t *testing.T) {\n"
    '\tt.Run("zero", func(t *testing.T) {\n\t\tif Mul(0, 7) != 0 {\n\t\t\tt.Fatal("zero")\n'
    "\t\t}\n\t})\n}\n"
)
LIMITS = CommandLimits(timeout_s=180, memory_mb=4096)


def _go_history(path: Path) -> tuple[Path, str]:
    repo = create_repository(path, {"go.mod": GO_MOD, "calc.go": CALC, "calc_test.go": TEST_ADD})
    sha = commit_files(repo, {"calc.go": MUL, "mul_test.go": TEST_MUL}, "Add Mul")
    return repo, sha


def _branch(checkout: Path, name: str, calc: str, path: str = "calc.go") -> str:
    git(checkout, "checkout", "-q", "-b", name)
    (checkout / path).write_text(calc)
    git(checkout, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-q", "-am", name)
    git(checkout, "checkout", "-q", "main")
    return name


@needs_go
def test_go_hidden_cases_are_read_from_go_test_json(tmp_path: Path) -> None:
    repo, sha = _go_history(tmp_path / "calc")
    task = read_task(repo, sha)
    assert task is not None and task.hidden_test_files == ["mul_test.go"]
    checkout = checkout_base(task, tmp_path / "checkout")
    env = resolve_environment(checkout, OrchestraConfig())
    assert env.runner == "go"
    home = tmp_path / "home"
    home.mkdir()
    required = reference_passing(task, env, home=home, limits=LIMITS)
    # The hidden file's functions and subtest; TestAdd (not hidden) is left out.
    assert required == {
        "example.com/calc::TestMul",
        "example.com/calc::TestMulTable",
        "example.com/calc::TestMulTable/zero",
    }

    solved = _branch(checkout, "solved", MUL)
    verdict = judge(task, checkout, solved, env, home=home, limits=LIMITS, required=required)
    assert verdict.passed, verdict
    assert verdict.counts["passed"] == 3 and verdict.counts["failed"] == 0

    # Without Mul the package does not build: no hidden case passes.
    unsolved = _branch(checkout, "unsolved", CALC + "\n// Other.\nfunc Other() {}\n")
    verdict = judge(task, checkout, unsolved, env, home=home, limits=LIMITS, required=required)
    assert not verdict.passed and verdict.reason == "3 hidden tests fail", verdict
    assert (verdict.counts["error"], verdict.counts["passed"]) == (1, 0)  # no build

    wrong = _branch(checkout, "wrong", CALC + "\nfunc Mul(a, b int) int { return a + b }\n")
    verdict = judge(task, checkout, wrong, env, home=home, limits=LIMITS, required=required)
    assert not verdict.passed
    assert verdict.failing == [
        "example.com/calc::TestMul",
        "example.com/calc::TestMulTable",
        "example.com/calc::TestMulTable/zero",
    ]
    assert not (checkout / "mul_test.go").exists()


@needs_go
@pytest.mark.slow
def test_replayed_go_task_passes_its_hidden_tests(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo, _ = _go_history(tmp_path / "calc")
    suite = suite_from_git(repo)
    assert [t.text for t in suite.tasks] == ["Add Mul"]
    spec = ExperimentSpec(
        name="go", suite="suite.json", replicates=1, arms=[Arm(name="replay"), Arm(name="weak")]
    )

    def open_arm(arm: Arm):  # type: ignore[no-untyped-def]
        unsolved = frozenset({"Add Mul"}) if arm.name == "weak" else frozenset()
        return replay_arm(arm, home=tmp_path, agents=pipeline_agents, unsolved=unsolved)

    outcome = run_experiment(
        spec, suite, open_arm, results=tmp_path / "go.jsonl", workdir=tmp_path / "work"
    )
    verdicts = {m.arm: (m.passed, m.acceptance) for m in outcome.measurements}
    assert verdicts["replay"][0], verdicts
    assert verdicts["replay"][1]["counts"]["passed"] == 3
    assert not verdicts["weak"][0], verdicts


JS_HEAD = (
    "const test = require('node:test');\nconst assert = require('node:assert');\n"
    "const calc = require('../calc');\n"
)
JS_ADD = "exports.add = (a, b) => a + b;\n"
JS_MUL = JS_ADD + "exports.mul = (a, b) => a * b;\n"


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_node_test_hidden_files_are_judged(tmp_path: Path) -> None:
    package = {"name": "calc", "version": "1.0.0", "scripts": {"test": "node --test"}}
    adds = JS_HEAD + "test('adds', () => { assert.strictEqual(calc.add(1, 2), 3); });\n"
    muls = JS_HEAD + "test('muls', () => { assert.strictEqual(calc.mul(2, 3), 6); });\n"
    repo = create_repository(
        tmp_path / "js",
        {"package.json": json.dumps(package), "calc.js": JS_ADD, "test/add.test.js": adds},
    )
    sha = commit_files(repo, {"calc.js": JS_MUL, "test/mul.test.js": muls}, "Add mul")
    task = read_task(repo, sha)
    assert task is not None
    checkout = checkout_base(task, tmp_path / "checkout")
    env = resolve_environment(checkout, OrchestraConfig())
    assert env.runner == "node"
    home = tmp_path / "home"
    home.mkdir()
    required = reference_passing(task, env, home=home, limits=LIMITS)
    assert required == {"test::muls"}  # node --test names the folder, not the file
    solved = _branch(checkout, "solved", JS_MUL, "calc.js")
    verdict = judge(task, checkout, solved, env, home=home, limits=LIMITS, required=required)
    assert verdict.passed, verdict
    unsolved = _branch(checkout, "unsolved", JS_ADD + "// no mul\n", "calc.js")
    verdict = judge(task, checkout, unsolved, env, home=home, limits=LIMITS, required=required)
    assert not verdict.passed and verdict.failing == ["test::muls"], verdict
