"""The red gate judged on real pytest runs: failing for the right reason only.

Moved from the whole-file gate (``orchestra.pipelines.gates.judge_red``) to the per-case
gate the pipeline now uses (``orchestra.repository.red_gate``); the assertions are kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.pipelines.plan import Plan, parse_plan
from orchestra.repository import detect_environment, red_gate
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits, Toolbox, Workspace

pytestmark = pytest.mark.slow  # each case runs pytest in a subprocess

PLAN = Plan.model_validate(
    {
        "approach": "x",
        "parts": [{"name": "core", "files": ["shop/prices.py"], "description": ""}],
        "tests": [],
        "acceptance_criteria": [],
    }
)


@pytest.fixture
def toolbox(tmp_path: Path) -> Toolbox:
    repo = create_repository(
        tmp_path / "repo",
        {
            "shop/__init__.py": "",
            "shop/cart.py": "def total(xs):\n    return sum(xs)\n",
            "tests/test_cart.py": (
                "from shop.cart import total\n\n\n"
                "def test_total():\n    assert total([1, 2]) == 3\n"
            ),
        },
    )
    ws = Workspace.create(repo, tmp_path / "wt", "orchestra/gate")
    return Toolbox(
        ws,
        tmp_path / "h",
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        [],
        CommandLimits(timeout_s=60),
    )


def _judge(toolbox: Toolbox, tmp_path: Path, test_source: str) -> tuple[bool, str]:
    ws = toolbox.workspace
    (ws.root / "tests/test_new.py").write_text(test_source)
    result = red_gate(
        detect_environment(ws.root, environ={}),
        ws.root,
        base_commit=ws.base_commit,
        planned_files=[f for part in PLAN.parts for f in part.files],
        home=toolbox.home,
        limits=toolbox.limits,
        report_dir=tmp_path / "reports",
    )
    return result.verdict.accepted, result.verdict.reason


def test_tests_failing_on_missing_behaviour_are_accepted(toolbox: Toolbox, tmp_path: Path) -> None:
    accepted, reason = _judge(
        toolbox,
        tmp_path,
        "from shop.prices import discount\n\n\ndef test_discount():\n"
        "    assert discount(100, 10) == 90\n",
    )
    assert accepted, reason


def test_assertion_failures_are_accepted(toolbox: Toolbox, tmp_path: Path) -> None:
    accepted, reason = _judge(
        toolbox,
        tmp_path,
        "from shop.cart import total\n\n\ndef test_total_of_nothing_is_none():\n"
        "    assert total([]) is None\n",
    )
    assert accepted, reason


def test_syntax_errors_are_rejected(toolbox: Toolbox, tmp_path: Path) -> None:
    accepted, reason = _judge(toolbox, tmp_path, "def test_x(:\n    pass\n")
    assert not accepted and "do not compile" in reason


def test_importing_something_that_will_never_exist_is_rejected(
    toolbox: Toolbox, tmp_path: Path
) -> None:
    accepted, reason = _judge(
        toolbox, tmp_path, "import hypothesis_extras_nope\n\n\ndef test_x():\n    assert 1\n"
    )
    assert not accepted and "other than the missing behaviour" in reason


def test_tests_that_already_pass_are_rejected(toolbox: Toolbox, tmp_path: Path) -> None:
    accepted, reason = _judge(
        toolbox,
        tmp_path,
        "from shop.cart import total\n\n\ndef test_total():\n    assert total([2]) == 2\n",
    )
    assert not accepted and "already pass" in reason


def test_partly_passing_tests_are_rejected_by_name(toolbox: Toolbox, tmp_path: Path) -> None:
    accepted, reason = _judge(
        toolbox,
        tmp_path,
        "from shop.cart import total\n\n\ndef test_ok():\n    assert total([2]) == 2\n\n\n"
        "def test_new():\n    assert total([]) is None\n",
    )
    assert not accepted and "::test_ok" in reason and "::test_new" not in reason


def test_breaking_existing_tests_is_rejected(toolbox: Toolbox, tmp_path: Path) -> None:
    (toolbox.workspace.root / "tests" / "conftest.py").write_text("raise RuntimeError('boom')\n")
    accepted, reason = _judge(toolbox, tmp_path, "def test_new():\n    assert False\n")
    assert not accepted and "existing tests fail" in reason


def test_plans_must_give_each_file_one_owner() -> None:
    plan, problem = parse_plan(
        {
            "approach": "x",
            "parts": [
                {"name": "a", "files": ["m.py"], "description": ""},
                {"name": "b", "files": ["m.py"], "description": ""},
            ],
            "tests": [],
            "acceptance_criteria": [],
        }
    )
    assert plan is None and "m.py is in parts" in problem
    plan, problem = parse_plan(
        {
            "approach": "x",
            "parts": [{"name": "a", "files": ["../m.py"]}],
            "tests": [],
            "acceptance_criteria": [],
        }
    )
    assert plan is None and "relative" in problem
