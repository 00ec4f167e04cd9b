"""Coverage measured in the tests' own environment, with the tests' own command."""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from orchestra.repository import detect_environment
from orchestra.repository.coverage_plan import coverage_plan, measure_coverage, wrap_python_command
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits
from tests.repository.fixtures import flat_repo


@pytest.mark.parametrize(
    ("command", "wrapped"),
    [
        (
            "/r/.venv/bin/python -m pytest -q -m 'not slow'",
            "/r/.venv/bin/python -m coverage run -m pytest -q -m 'not slow'",
        ),
        ("python3.12 -X dev -m pytest", "python3.12 -X dev -m coverage run -m pytest"),
        ("pytest -x tests", "python -m coverage run -m pytest -x tests"),
        (
            "/r/.venv/bin/pytest -x",
            "/r/.venv/bin/python -m coverage run -m pytest -x",
        ),
        (
            "env DJANGO_SETTINGS_MODULE=s python -m pytest",
            "env DJANGO_SETTINGS_MODULE=s python -m coverage run -m pytest",
        ),
        (
            "uv run --python python3.11 pytest -q",
            "uv run --python python3.11 python -m coverage run -m pytest -q",
        ),
        ("poetry run python -m unittest", "poetry run python -m coverage run -m unittest"),
    ],
)
def test_coverage_wraps_the_pytest_run_wherever_it_is(command: str, wrapped: str) -> None:
    result = wrap_python_command(shlex.split(command))
    assert result is not None
    assert shlex.join(result[0]) == wrapped


def test_sh_c_script_is_rewritten_inside() -> None:
    result = wrap_python_command(["sh", "-c", "cd pkg && python -m pytest -q -k 'a or b'"])
    assert result is not None
    argv, python = result
    assert argv[:2] == ["sh", "-c"]
    assert argv[2] == "cd pkg && python -m coverage run -m pytest -q -k 'a or b'"
    assert python == "python"


@pytest.mark.parametrize("command", ["tox -e py", "make test", "python -m coverage run -m pytest"])
def test_commands_that_cannot_be_wrapped(command: str) -> None:
    assert wrap_python_command(shlex.split(command)) is None


def test_plans_for_other_languages_and_the_reason_when_not_measured(tmp_path: Path) -> None:
    repo = create_repository(tmp_path / "g", {"go.mod": "module example.com/g\n"})
    go = coverage_plan(detect_environment(repo, environ={}), tmp_path / "cov")
    assert go.command == ("go", "test", f"-coverprofile={tmp_path / 'cov' / 'cover.out'}", "./...")
    js = create_repository(tmp_path / "j", {"package.json": '{"scripts": {"test": "vitest"}}'})
    plan = coverage_plan(detect_environment(js, environ={}), tmp_path / "cov")
    assert not plan.measured and "npm install --save-dev c8" in plan.reason
    tox = replace(detect_environment(repo, environ={}), language="python", command=("tox",))
    assert "coverage_command" in coverage_plan(tox, tmp_path).reason


def test_measured_in_the_environment_with_the_command(tmp_path: Path) -> None:
    repo = flat_repo(tmp_path / "flat")
    (repo / "calc.py").write_text(
        "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    )
    env = detect_environment(repo, environ={})
    env = replace(env, command=("sh", "-c", f"{sys.executable} -m pytest -q -p no:cacheprovider"))
    plan = coverage_plan(env, tmp_path / "cov")
    assert plan.tool == "coverage.py"
    data, reason = measure_coverage(
        plan, env, repo, home=tmp_path / "h", limits=CommandLimits(timeout_s=120)
    )
    assert data is not None, reason
    assert 2 in data.executed["calc.py"]
    assert data.missing["calc.py"] == {6}


def test_changed_line_coverage_counts_only_changed_implementation_lines(tmp_path: Path) -> None:
    from orchestra.repository import changed_line_coverage
    from tests.repository.fixtures import commit_files, git

    repo = flat_repo(tmp_path / "flat")
    base = git(repo, "rev-parse", "HEAD").strip()
    commit_files(
        repo,
        {
            "calc.py": "def add(a, b):\n    return a + b\n\n\ndef neg(a):\n"
            "    if a is None:\n        raise TypeError\n    return -a\n",
            "tests/test_neg.py": "from calc import neg\n\n\ndef test_neg():\n"
            "    assert neg(2) == -2\n",
        },
        "neg",
    )
    env = detect_environment(repo, environ={})
    result = changed_line_coverage(
        env,
        repo,
        base,
        home=tmp_path / "h",
        limits=CommandLimits(timeout_s=120),
        data_dir=tmp_path / "cov",
    )
    assert result["status"] == "measured", result
    assert result["files"] == {"calc.py": {"changed_executable": 4, "covered": 3, "missing": [7]}}
    assert result["percent"] == 75.0
    not_measured = changed_line_coverage(
        replace(env, command=("make", "test")),
        repo,
        base,
        home=tmp_path / "h",
        limits=CommandLimits(timeout_s=60),
        data_dir=tmp_path / "cov2",
    )
    assert not_measured["status"].startswith("not measured")
    assert "coverage_command" in not_measured["status"]
