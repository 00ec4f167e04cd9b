"""Go and JS/TS tests are new or changed per test function, like Python's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestra.repository.changes import changed_tests_in
from orchestra.repository.test_sources import TestSpan, go_test_spans, js_test_spans
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits
from tests.repository.fixtures import commit_files, gates_in, git

LIMITS = CommandLimits(timeout_s=180, memory_mb=4096)

GO_SOURCE = """package x

import "testing"

// func TestInComment(t *testing.T) {
func TestA(t *testing.T) {
\ts := "}{ func TestInString(t *testing.T) {"
\tr := '}'
\t_ = `
}`
\tif s != "" { t.Log(s, r) }
}

func (s *S) TestMethod() {}
func Testlower(t *testing.T) {}
func TestB(t *testing.T) { /* } */ }
func FuzzC(f *testing.F) {
}
"""


def test_go_spans_skip_strings_runes_raw_strings_and_comments() -> None:
    assert go_test_spans(GO_SOURCE) == [
        TestSpan("TestA", 6, 12),
        TestSpan("TestB", 16, 16),
        TestSpan("FuzzC", 17, 18),
    ]


JS_SOURCE = """import { describe, it, test } from "vitest";
// test("commented", () => {})
describe("Outer", () => {
  const re = /[)}]/g;
  it("a }", () => {
    expect(`x ${ {a: 1}.a } )`).toBe(1);
  });
  describe(`Inner`, () => {
    test.only("deep \\"q\\"", async () => {
      const x = 4 / 2; const y = (1) / 2;
    });
  });
});
/* it("block comment", () => {}) */
test("top", () => {});
foo.test("not a test", () => {});
test(`named ${x}`, () => {});
"""


def test_js_spans_nest_in_describe_and_skip_literals() -> None:
    assert js_test_spans(JS_SOURCE) == [
        TestSpan("Outer > a }", 5, 7),
        TestSpan('Outer > Inner > deep "q"', 9, 11),
        TestSpan("top", 15, 15),
    ]


def test_changed_go_and_js_tests_get_the_runners_ids(tmp_path: Path) -> None:
    go_test = 'package calc\n\nimport "testing"\n\nfunc TestA(t *testing.T) {\n}\n\n'
    go_test += "func TestB(t *testing.T) {\n}\n"
    js_test = "describe('Calc', () => {\n  it('adds', () => {\n  });\n  it('subs', () => {\n"
    js_test += "  });\n});\n"
    repo = create_repository(
        tmp_path / "r",
        {
            "go.mod": "module example.com/m\n",
            "calc/calc_test.go": go_test,
            "test/calc.test.js": js_test,
        },
    )
    base = git(repo, "rev-parse", "HEAD").strip()
    commit_files(
        repo,
        {
            "calc/calc_test.go": go_test.replace(
                "TestB(t *testing.T) {\n", "TestB(t *testing.T) {\n\tt.Log()\n"
            ),
            "test/calc.test.js": js_test.replace(
                "it('adds', () => {\n", "it('adds', () => {\n  x();\n"
            ),
        },
        "change one test in each",
    )
    base_ids = frozenset(
        {
            "example.com/m/calc::TestA",
            "example.com/m/calc::TestB",
            "Calc::subs",
            "test/calc.test.js::Calc > subs",
        }
    )
    changed = changed_tests_in(repo, base, base_ids)
    assert changed.functions == {"example.com/m/calc::TestB", "test/calc.test.js::Calc > adds"}
    assert changed.is_new_or_changed("example.com/m/calc::TestB/table_case")
    assert not changed.is_new_or_changed("example.com/m/calc::TestA")
    assert changed.function_of("Calc::adds") == "test/calc.test.js::Calc > adds"  # node --test
    assert not changed.is_new_or_changed("Calc::subs")
    assert not changed.is_new_or_changed("test/calc.test.js::Calc > subs")


GO_CALC = 'package calc\n\nfunc Greet(n string) string { return "hello " + n }\n\n'
GO_CALC += "func Add(a, b int) int { return a + b }\n"
GO_TEST = """package calc

import "testing"

func TestGreet(t *testing.T) {
\tif Greet("ann") != "hello ann" {
\t\tt.Fatal(Greet("ann"))
\t}
}

func TestAdd(t *testing.T) {
\tif Add(1, 2) != 3 {
\t\tt.Fatal("add")
\t}
}
"""


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain (golang-go)")
def test_go_changed_existing_test_must_fail_in_red(tmp_path: Path) -> None:
    repo = create_repository(
        tmp_path / "gomod",
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": GO_CALC,
            "calc_test.go": GO_TEST,
        },
    )
    gates = gates_in(tmp_path, repo, LIMITS)
    assert gates.baseline.test_ids == {"example.com/calc::TestGreet", "example.com/calc::TestAdd"}
    (repo / "calc_test.go").write_text(GO_TEST.replace('!= "hello ann"', '!= "Hello, ann!"'))
    red = gates.red(["calc.go"])
    assert red.verdict.accepted, red.verdict.reason
    assert red.verdict.new_failing == ("example.com/calc::TestGreet",)
    assert red.verdict.counts == {"passed": 1, "failed": 1, "error": 0, "skipped": 0}
    # The unchanged test of the same file must keep passing.
    (repo / "calc.go").write_text(GO_CALC.replace("a + b", "a - b"))
    broken = gates.red(["calc.go"])
    assert not broken.verdict.accepted
    assert [p.kind for p in broken.verdict.problems] == ["broken_existing"]
    assert broken.verdict.problems[0].ids == ("example.com/calc::TestAdd",)
    (repo / "calc.go").write_text(GO_CALC.replace('"hello " + n', '"Hello, " + n + "!"'))
    green = gates.green()
    assert green.verdict.accepted, green.verdict.reason


NODE_TEST = """const { describe, it } = require('node:test');
const assert = require('node:assert');
const calc = require('../calc.js');

describe('calc', () => {
  it('adds', () => { assert.strictEqual(calc.add(1, 2), 3); });
  it('greets', () => { assert.strictEqual(calc.greet('ann'), 'hello ann'); });
});
"""
CALC_JS = "exports.add = (a, b) => a + b;\nexports.greet = (n) => 'hello ' + n;\n"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_js_changed_existing_test_must_fail_in_red(tmp_path: Path) -> None:
    package = {"name": "calc", "version": "1.0.0", "scripts": {"test": "node --test"}}
    repo = create_repository(
        tmp_path / "js",
        {"package.json": json.dumps(package), "calc.js": CALC_JS, "test/calc.test.js": NODE_TEST},
    )
    gates = gates_in(tmp_path, repo, LIMITS)
    assert gates.baseline.test_ids == {"calc::adds", "calc::greets"}
    changed_test = NODE_TEST.replace("'hello ann'", "'Hello, ann!'")
    (repo / "test/calc.test.js").write_text(changed_test)
    red = gates.red(["calc.js"])
    assert red.verdict.accepted, red.verdict.reason
    assert red.verdict.new_failing == ("calc::greets",)
    assert red.new_case_counts() == {"passed": 0, "failed": 1, "error": 0, "skipped": 0}
    (repo / "calc.js").write_text(CALC_JS.replace("'hello ' + n", "'Hello, ' + n + '!'"))
    green = gates.green()
    assert green.verdict.accepted, green.verdict.reason
