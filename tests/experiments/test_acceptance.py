"""The hidden-test judge: only the cases the task's own commit passes count."""

from __future__ import annotations

from pathlib import Path

from orchestra.config import OrchestraConfig
from orchestra.experiments import checkout_base, judge, read_task, reference_passing
from orchestra.repository import resolve_environment
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits, git
from tests.experiments.conftest import CALC, MUL, TEST_MUL
from tests.repository.fixtures import commit_files

BROKEN = TEST_MUL + "\n\ndef test_broken_here():\n    assert False\n"


def _branch(checkout: Path, name: str, calc: str) -> str:
    git(checkout, "checkout", "-q", "-b", name)
    (checkout / "calc.py").write_text(calc)
    git(
        checkout,
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@l",
        "commit",
        "-q",
        "--allow-empty",
        "-am",
        name,
    )
    git(checkout, "checkout", "-q", "main")
    return name


def test_a_case_failing_with_the_reference_does_not_count(tmp_path: Path) -> None:
    # Three real pytest runs (the reference, a solved and an unsolved branch): 5-10 s here.
    repo = create_repository(tmp_path / "calc", {"calc.py": CALC, "tests/test_add.py": ""})
    sha = commit_files(repo, {"calc.py": MUL, "tests/test_mul.py": BROKEN}, "Add calc.mul")
    task = read_task(repo, sha)
    assert task is not None
    checkout = checkout_base(task, tmp_path / "checkout")
    env = resolve_environment(checkout, OrchestraConfig())
    limits = CommandLimits(timeout_s=60)
    home = tmp_path / "home"
    home.mkdir()
    required = reference_passing(task, env, home=home, limits=limits)
    assert required == {"tests/test_mul.py::test_mul", "tests/test_mul.py::test_mul_zero"}

    solved = _branch(checkout, "solved", MUL)
    verdict = judge(task, checkout, solved, env, home=home, limits=limits, required=required)
    assert verdict.passed, verdict

    unsolved = _branch(checkout, "unsolved", CALC)
    verdict = judge(task, checkout, unsolved, env, home=home, limits=limits, required=required)
    assert not verdict.passed and verdict.reason == "2 hidden tests fail"
    assert not judge(task, checkout, "nope", env, home=home, limits=limits).passed
    # The checkout never saw the hidden file.
    assert not (checkout / "tests/test_mul.py").exists()
