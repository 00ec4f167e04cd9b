"""New or changed tests, decided per test function."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from orchestra.repository import detect_environment
from orchestra.repository.changes import (
    ChangedTests,
    FunctionRange,
    TouchedLines,
    changed_tests,
    changed_tests_in,
    function_ranges,
    is_test_file,
    is_test_support,
    parse_collected_ids,
    touched_lines,
)
from orchestra.repository.runner import collect_test_ids
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits
from tests.repository.fixtures import commit_files, git

LIMITS = CommandLimits(timeout_s=90)

SOURCE = """import pytest


def helper():
    return 1


@pytest.mark.parametrize("x", [1])
def test_one(x):
    assert x


class TestGroup:
    def test_a(self):
        assert True

    class TestInner:
        async def test_b(self):
            pass
"""


def test_function_ranges_include_decorators_and_classes() -> None:
    assert function_ranges(SOURCE) == [
        FunctionRange("test_one", 8, 10),
        FunctionRange("TestGroup::test_a", 14, 15),
        FunctionRange("TestGroup::TestInner::test_b", 18, 19),
    ]


DIFF = """diff --git a/tests/test_x.py b/tests/test_x.py
--- a/tests/test_x.py
+++ b/tests/test_x.py
@@ -3,0 +4,2 @@ def f():
+    a
+    b
@@ -10 +12 @@ def g():
-    old
+    new
@@ -20,2 +21,0 @@ def h():
-    gone
-    gone
diff --git a/old.py b/old.py
--- a/old.py
+++ /dev/null
@@ -1 +0,0 @@
-x
"""


def test_touched_lines_from_a_zero_context_diff() -> None:
    touched = touched_lines(DIFF)
    assert touched == {"tests/test_x.py": TouchedLines(frozenset({4, 5, 12}), frozenset({21}))}


def test_deletion_inside_a_function_changes_it_but_not_at_its_edge() -> None:
    fn = FunctionRange("test_f", 10, 14)
    assert fn.touched_by(TouchedLines(deleted_after=frozenset({12})))
    assert not fn.touched_by(TouchedLines(deleted_after=frozenset({14})))
    assert not fn.touched_by(TouchedLines(deleted_after=frozenset({9})))


@given(
    start=st.integers(1, 500),
    length=st.integers(0, 50),
    line=st.integers(1, 600),
)
def test_an_added_line_changes_exactly_the_functions_containing_it(
    start: int, length: int, line: int
) -> None:
    fn = FunctionRange("t", start, start + length)
    touched = TouchedLines(added=frozenset({line}))
    assert fn.touched_by(touched) == (start <= line <= start + length)


@given(names=st.lists(st.from_regex(r"test_[a-z]{1,8}", fullmatch=True), unique=True, max_size=8))
def test_a_new_file_makes_every_test_new(names: list[str]) -> None:
    source = "".join(f"def {n}():\n    pass\n\n\n" for n in names)
    result = changed_tests({"tests/test_n.py": source}, {}, {"tests/test_n.py": None})
    assert result.functions == {f"tests/test_n.py::{n}" for n in names}


def test_is_new_or_changed_uses_functions_then_base_ids() -> None:
    changed = ChangedTests(
        functions=frozenset({"t.py::test_new"}),
        base_ids=frozenset({"t.py::test_old", "t.py::test_p[1]"}),
    )
    assert changed.is_new_or_changed("t.py::test_new[1]")
    assert not changed.is_new_or_changed("t.py::test_old")
    assert changed.is_new_or_changed("t.py::test_p[2]")  # a new parameter
    assert not changed.is_new_or_changed("t.py")  # a file-level (collection) case
    assert not ChangedTests().is_new_or_changed("t.py::test_x")


def test_test_files_and_test_support() -> None:
    assert is_test_file("tests/test_a.py") and is_test_file("pkg/a_test.py")
    assert is_test_file("calc_test.go") and is_test_file("src/a.test.ts")
    assert not is_test_file("tests/helpers.py")
    for support in ("tests/__init__.py", "conftest.py", "tests/helpers/base.py", "test/util.py"):
        assert is_test_support(support)
    assert not is_test_support("src/pkg/mod.py")


def test_parse_collected_ids() -> None:
    out = "tests/test_a.py::test_x\ntests/test_a.py::C::test_y[1]\n\n2 tests collected in 0.01s\n"
    assert parse_collected_ids(out) == {"tests/test_a.py::test_x", "tests/test_a.py::C::test_y[1]"}


MANY = "".join(f"def test_existing_{i}():\n    assert {i} == {i}\n\n\n" for i in range(200))


def test_a_commit_adding_three_tests_to_a_file_of_two_hundred(tmp_path: Path) -> None:
    repo = create_repository(
        tmp_path / "r",
        {"calc.py": "def add(a, b):\n    return a + b\n", "tests/test_many.py": MANY},
    )
    env = detect_environment(repo, environ={})
    base = git(repo, "rev-parse", "HEAD").strip()
    collected = collect_test_ids(env, repo, home=tmp_path / "h", limits=LIMITS)
    assert collected is not None and collected.ok, collected
    assert len(collected.ids) == 200
    added = "".join(
        f"def test_new_{i}():\n    assert add(1, {i}) == {i + 1}\n\n\n" for i in range(3)
    )
    # One existing test changes too; one is deleted.
    text = MANY.replace("assert 7 == 7", "assert 7 == 7.0").replace(
        "def test_existing_9():\n    assert 9 == 9\n\n\n", ""
    )
    commit_files(repo, {"tests/test_many.py": "from calc import add\n\n\n" + text + added}, "more")
    changed = changed_tests_in(repo, base, collected.ids)
    assert changed.functions == {
        "tests/test_many.py::test_existing_7",
        "tests/test_many.py::test_new_0",
        "tests/test_many.py::test_new_1",
        "tests/test_many.py::test_new_2",
    }
    assert not changed.is_new_or_changed("tests/test_many.py::test_existing_8")
    assert not changed.is_new_or_changed("tests/test_many.py::test_existing_10")


def test_untracked_and_unparsable_test_files(tmp_path: Path) -> None:
    repo = create_repository(tmp_path / "r", {"README": "x\n"})
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "tests").mkdir()
    (repo / "tests/test_new.py").write_text("def test_a():\n    pass\n")
    (repo / "tests/test_bad.py").write_text("def test_b(:\n")
    (repo / "tests/helpers.py").write_text("def test_looking_helper():\n    pass\n")
    changed = changed_tests_in(repo, base)
    assert changed.functions == {"tests/test_new.py::test_a"}
    assert "tests/test_bad.py" in changed.unparsable
