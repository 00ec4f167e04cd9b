"""The red and green verdicts, per test case (pure functions)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestra.repository.changes import ChangedTests
from orchestra.repository.planned import PlannedCode, python_module
from orchestra.repository.reports import CaseResult, TestReport
from orchestra.repository.verdict import (
    IDS_SHOWN,
    REASON_LIMIT,
    judge_green_cases,
    judge_red_cases,
    missing_behaviour,
    name_ids,
)

PLANNED = PlannedCode(
    files=frozenset({"src/pkg/mod.py", "src/pkg/stock.py"}),
    modules=frozenset({"pkg.mod", "pkg.stock", "src.pkg.mod"}),
    names=frozenset({"Stock", "add", "low_stock"}),
)
NEW = ChangedTests(functions=frozenset({"tests/test_a.py::test_new"}))


def fail(
    case_id: str, error_type: str, message: str = "", phase: str = "call", outcome: str = "failed"
) -> CaseResult:
    return CaseResult(case_id, outcome, phase, error_type, message)  # type: ignore[arg-type]


def ok(case_id: str) -> CaseResult:
    return CaseResult(case_id, "passed")


def red(*cases: CaseResult, changed: ChangedTests = NEW, preexisting: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return judge_red_cases(TestReport(list(cases), exit_code=1), changed, PLANNED, preexisting)


def test_python_module_names() -> None:
    assert python_module("src/pkg/mod.py") == "pkg.mod"
    assert python_module("pkg/__init__.py") == "pkg"
    assert python_module("README.md") is None


RIGHT = [
    ("AssertionError", "assert 1 == 2"),
    ("NotImplementedError", ""),
    ("Failed", "DID NOT RAISE ValueError"),
    ("AttributeError", "module 'pkg.mod' has no attribute 'newfn'"),
    ("AttributeError", "'Stock' object has no attribute 'low_stock'"),
    ("AttributeError", "type object 'Stock' has no attribute 'build'"),
    ("ModuleNotFoundError", "No module named 'pkg.mod'"),
    ("ImportError", "cannot import name 'newfn' from 'pkg.mod' (/x/src/pkg/mod.py)"),
    ("TypeError", "Stock.add() got an unexpected keyword argument 'note'"),
]
WRONG = [
    ("NameError", "name 'undefined_name' is not defined"),
    ("SyntaxError", "invalid syntax"),
    ("AttributeError", "module 'json' has no attribute 'nope'"),
    ("AttributeError", "'Order' object has no attribute 'x'"),
    ("ModuleNotFoundError", "No module named 'requests_mock'"),
    ("ImportError", "cannot import name 'x' from 'other.thing' (/x.py)"),
    ("TypeError", "unsupported operand type(s) for +: 'int' and 'str'"),
    ("KeyError", "'k'"),
    ("Failed", "some pytest.fail call"),
]


def test_right_reasons() -> None:
    for error_type, message in RIGHT:
        judgement = missing_behaviour(fail("t.py::t", error_type, message), PLANNED)
        assert judgement.right, (error_type, message, judgement.why)


def test_wrong_reasons() -> None:
    for error_type, message in WRONG:
        judgement = missing_behaviour(fail("t.py::t", error_type, message), PLANNED)
        assert not judgement.right, (error_type, message)


def test_instanceof_of_a_missing_export_is_right_only_when_a_js_file_is_planned() -> None:
    """fastify/fastify-error's `err instanceof FastifyError` before the module exports it."""
    case = fail(
        "test::is a FastifyError", "TypeError", "Right-hand side of 'instanceof' is not an object"
    )
    js = PlannedCode(files=frozenset({"index.js"}), modules=frozenset({"index"}))
    assert missing_behaviour(case, js).right
    assert not missing_behaviour(case, PLANNED).right


def test_fixture_errors_are_wrong_even_with_a_planned_import() -> None:
    case = fail("t.py::t", "ImportError", "No module named 'pkg.mod'", phase="setup")
    assert not missing_behaviour(case, PLANNED).right


def test_collection_error_with_a_planned_import_is_right_otherwise_wrong() -> None:
    right = fail("t.py", "ModuleNotFoundError", "No module named 'pkg.mod'", "collection", "error")
    wrong = fail("t.py", "NameError", "name 'x' is not defined", "collection", "error")
    assert missing_behaviour(right, PLANNED).right
    assert not missing_behaviour(wrong, PLANNED).right


def test_accepts_new_tests_failing_right_with_unchanged_tests_passing() -> None:
    verdict = red(
        fail("tests/test_a.py::test_new", "AssertionError", "assert 0 == 1"),
        ok("tests/test_a.py::test_old"),
    )
    assert verdict.accepted, verdict.reason
    assert verdict.new_failing == ("tests/test_a.py::test_new",)


def test_unchanged_test_failing_in_a_changed_file_is_refused() -> None:
    verdict = red(
        fail("tests/test_a.py::test_new", "AssertionError"),
        fail("tests/test_a.py::test_old", "AssertionError", "assert 2 == 3"),
    )
    assert not verdict.accepted
    assert [p.kind for p in verdict.problems] == ["broken_existing"]
    assert "tests/test_a.py::test_old" in verdict.reason


def test_preexisting_failures_are_left_out_only_when_given() -> None:
    cases = (
        fail("tests/test_a.py::test_new", "AssertionError"),
        fail("tests/test_z.py::test_flaky", "AssertionError"),
    )
    assert not red(*cases).accepted
    assert red(*cases, preexisting=("tests/test_z.py::test_flaky",)).accepted


def test_new_test_that_passes_or_is_skipped_is_refused() -> None:
    assert [p.kind for p in red(ok("tests/test_a.py::test_new")).problems] == ["already_passes"]
    skipped = CaseResult("tests/test_a.py::test_new", "skipped")
    assert [p.kind for p in red(skipped).problems] == ["skipped"]


def test_a_name_error_in_one_file_is_refused_while_another_has_an_import_error() -> None:
    changed = ChangedTests(
        functions=frozenset({"tests/test_a.py::test_new", "tests/test_b.py::test_other"})
    )
    verdict = red(
        fail("tests/test_a.py", "ModuleNotFoundError", "No module named 'pkg.mod'", "collection"),
        fail("tests/test_b.py", "NameError", "name 'Stok' is not defined", "collection"),
        changed=changed,
    )
    assert not verdict.accepted
    wrong = next(p for p in verdict.problems if p.kind == "wrong_reason")
    assert wrong.ids == ("tests/test_b.py::test_other",)


def test_existing_tests_blocked_by_a_planned_import_are_not_broken() -> None:
    changed = ChangedTests(
        functions=frozenset({"tests/test_a.py::test_new"}),
        base_ids=frozenset({"tests/test_a.py::test_old", "tests/test_c.py::test_c"}),
    )
    verdict = red(
        fail("tests/test_a.py", "ImportError", "cannot import name 'newfn' from 'pkg.mod'"),
        ok("tests/test_c.py::test_c"),
        changed=changed,
    )
    assert verdict.accepted, verdict.reason
    assert verdict.new_failing == ("tests/test_a.py::test_new",)


def test_no_new_tests_and_not_run_tests() -> None:
    assert [p.kind for p in red(ok("x.py::t"), changed=ChangedTests()).problems] == ["no_new_tests"]
    assert [p.kind for p in red(ok("x.py::t")).problems] == ["not_run"]


def test_no_structured_report_is_refused_with_the_first_output_line() -> None:
    report = TestReport(
        exit_code=1, structured=False, output="\n/x/python: No module named pytest\n"
    )
    verdict = judge_red_cases(report, NEW, PLANNED)
    assert not verdict.accepted
    assert "No module named pytest" in verdict.reason


def test_go_package_that_does_not_build_for_a_planned_symbol_holds_the_new_tests() -> None:
    planned = PlannedCode(modules=frozenset({"example.com/m/shout"}))
    build = fail("example.com/m/shout", "build failed", "undefined: Shout", "collection", "error")
    verdict = judge_red_cases(
        TestReport([build, ok("example.com/m/calc::TestAdd")], exit_code=1),
        ChangedTests(base_ids=frozenset({"example.com/m/calc::TestAdd"})),
        planned,
    )
    assert verdict.accepted, verdict.reason


ids = st.lists(st.text("abcdefghij/_.:", min_size=1, max_size=200), min_size=0, max_size=3000)


@given(ids)
def test_name_ids_shows_a_handful_and_counts_the_rest(values: list[str]) -> None:
    text = name_ids(values)
    shown = values[:IDS_SHOWN]
    if len(values) > IDS_SHOWN:
        assert text.endswith(f"and {len(values) - IDS_SHOWN} more")
    assert len(text) <= IDS_SHOWN * 125 + 30
    assert len(shown) <= IDS_SHOWN


@given(
    n_passing_new=st.integers(0, 600),
    n_broken=st.integers(0, 600),
    message=st.text(max_size=5000),
)
def test_every_reason_is_bounded(n_passing_new: int, n_broken: int, message: str) -> None:
    cases = [ok(f"tests/test_a.py::test_new_{i}") for i in range(n_passing_new)]
    cases += [
        fail(f"tests/test_b.py::test_{i}", "AssertionError", message) for i in range(n_broken)
    ]
    changed = ChangedTests(
        functions=frozenset(f"tests/test_a.py::test_new_{i}" for i in range(n_passing_new))
    )
    verdict = judge_red_cases(TestReport(cases, exit_code=1), changed, PLANNED)
    assert len(verdict.reason) <= REASON_LIMIT
    green = judge_green_cases(TestReport(cases, exit_code=1))
    assert len(green.reason) <= REASON_LIMIT
    assert verdict.accepted == (not verdict.problems)


@given(
    n_old=st.integers(0, 300),
    kinds=st.lists(st.sampled_from([t for t, _ in RIGHT[:3]]), min_size=1, max_size=20),
)
def test_new_tests_failing_by_assertion_with_others_passing_are_always_accepted(
    n_old: int, kinds: list[str]
) -> None:
    new = [fail(f"tests/t.py::test_n{i}", k, "DID NOT RAISE X") for i, k in enumerate(kinds)]
    old = [ok(f"tests/t.py::test_o{i}") for i in range(n_old)]
    changed = ChangedTests(functions=frozenset(c.id for c in new))
    verdict = judge_red_cases(TestReport(new + old, exit_code=1), changed, PLANNED)
    assert verdict.accepted, verdict.reason
    assert len(verdict.new_failing) == len(kinds)


def test_green_passes_only_when_every_case_passes_apart_from_preexisting() -> None:
    report = TestReport([ok("a::t"), fail("b::t", "AssertionError")], exit_code=1)
    assert not judge_green_cases(report).accepted
    assert judge_green_cases(report, ["b::t"]).accepted
    assert not judge_green_cases(TestReport(exit_code=2, structured=False)).accepted
