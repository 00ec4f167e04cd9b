"""Preflight on fixture repositories: broken environments stop with the right diagnosis."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestra.config import OrchestraConfig
from orchestra.repository import PreflightFailed, detect_environment, resolve_environment
from orchestra.repository.diagnosis import first_error_line
from orchestra.repository.preflight import environment_fingerprint, preflight
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits
from tests.repository.fixtures import (
    build_wheel,
    flat_repo,
    make_venv,
    pip_install,
    src_layout_repo,
)

LIMITS = CommandLimits(timeout_s=120)


def _preflight(tmp_path: Path, env, worktree: Path, **kwargs):  # type: ignore[no-untyped-def]
    return preflight(
        env,
        worktree,
        home=tmp_path / "home",
        limits=LIMITS,
        report_dir=tmp_path / "reports",
        **kwargs,
    )


def test_flat_layout_passes_and_is_cached_per_commit_and_environment(tmp_path: Path) -> None:
    repo = flat_repo(tmp_path / "flat")
    env = detect_environment(repo, environ={})
    cache = tmp_path / "cache"
    first = _preflight(tmp_path, env, repo, cache_dir=cache)
    assert first.test_ids == {"tests/test_calc.py::test_add"}
    assert not first.cached and first.counts["passed"] == 1
    (tmp_path / "reports" / "baseline.xml").unlink()
    second = _preflight(tmp_path, env, repo, cache_dir=cache)
    assert second.cached and second.test_ids == first.test_ids
    assert not (tmp_path / "reports" / "baseline.xml").exists()  # not run again
    other = replace(env, env={"X": "1"})
    assert environment_fingerprint(other, repo) != environment_fingerprint(env, repo)


def test_dirty_work_tree_is_refused(tmp_path: Path) -> None:
    repo = flat_repo(tmp_path / "flat")
    (repo / "notes.txt").write_text("wip\n")
    with pytest.raises(PreflightFailed, match=r"uncommitted changes: notes\.txt") as info:
        _preflight(tmp_path, detect_environment(repo, environ={}), repo)
    assert "commit or stash" in (info.value.hint or "")


def test_venv_without_pytest_says_no_module_named_pytest_and_how_to_install(
    tmp_path: Path,
) -> None:
    repo = flat_repo(tmp_path / "flat")
    make_venv(repo / ".venv", with_pytest=None)
    env = detect_environment(repo, environ={})
    with pytest.raises(PreflightFailed) as info:
        _preflight(tmp_path, env, repo)
    assert info.value.first_error.endswith("No module named pytest")
    assert f"{repo.resolve()}/.venv/bin/python -m pip install pytest" in (info.value.hint or "")


def test_src_layout_missing_its_test_dependency_names_it(
    tmp_path: Path, site_with_pytest: Path
) -> None:
    repo = src_layout_repo(tmp_path / "mypkg")
    make_venv(repo / ".venv", with_pytest=site_with_pytest)
    env = detect_environment(repo, environ={})
    with pytest.raises(PreflightFailed) as info:
        _preflight(tmp_path, env, repo)
    assert info.value.first_error == "ModuleNotFoundError: No module named 'shinydep'"
    assert "pip install shinydep" in (info.value.hint or "")
    # Installed into the repository's own environment, the baseline passes.
    pip_install(
        repo / ".venv/bin/python",
        build_wheel(tmp_path / "w", "shinydep", {"shinydep.py": "TWO = 2\n"}),
    )
    baseline = _preflight(tmp_path, env, repo)
    assert baseline.test_ids == {"tests/test_core.py::test_double"}


def test_own_package_not_on_the_import_path_says_to_set_python_path(
    tmp_path: Path, site_with_pytest: Path
) -> None:
    repo = src_layout_repo(tmp_path / "mypkg")
    python = make_venv(repo / ".venv", with_pytest=site_with_pytest)
    pip_install(python, build_wheel(tmp_path / "w", "shinydep", {"shinydep.py": "TWO = 2\n"}))
    config = OrchestraConfig.model_validate(
        {"repositories": {"overrides": {str(repo): {"python_path": ["lib"]}}}}
    )
    env = resolve_environment(repo, config, environ={})
    with pytest.raises(PreflightFailed) as info:
        _preflight(tmp_path, env, repo)
    assert "No module named 'mypkg'" in info.value.first_error
    assert "python_path" in (info.value.hint or "")


def test_failing_baseline_stops_unless_pre_existing_failures_are_allowed(tmp_path: Path) -> None:
    repo = create_repository(
        tmp_path / "r",
        {
            "tests/test_a.py": "def test_ok():\n    pass\n\n\ndef test_broken():\n    assert 0\n",
        },
    )
    env = detect_environment(repo, environ={})
    with pytest.raises(PreflightFailed, match="1 tests already fail") as info:
        _preflight(tmp_path, env, repo)
    assert "preexisting_failures" in (info.value.hint or "")
    baseline = _preflight(tmp_path, env, repo, allow_preexisting=True)
    assert baseline.preexisting_failures == {"tests/test_a.py::test_broken"}


def test_missing_command_is_named(tmp_path: Path) -> None:
    repo = flat_repo(tmp_path / "flat")
    env = replace(detect_environment(repo, environ={}), command=("nosuchrunner", "-q"))
    with pytest.raises(PreflightFailed) as info:
        _preflight(tmp_path, env, repo)
    assert "nosuchrunner" in info.value.first_error
    assert "test_command" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (
            "Traceback (most recent call last):\n  File x\n/v/bin/python: No module named pytest\n",
            "/v/bin/python: No module named pytest",
        ),
        (
            "ImportError while loading conftest '/r/tests/conftest.py'.\n"
            "tests/conftest.py:1: in <module>\n    import mypkg\n"
            "E   ModuleNotFoundError: No module named 'mypkg'\n",
            "ModuleNotFoundError: No module named 'mypkg'",
        ),
        (
            "ERROR: usage: pytest [options]\nerror: unrecognized arguments: --x\n",
            "ERROR: usage: pytest [options]",
        ),
        (
            # hynek/stamina's base under today's pytest 9: the cause, not the summary line.
            "==== ERRORS ====\n"
            "_____ ERROR collecting tests/test_instrumentation.py _____\n"
            "Duplicate parametrization IDs detected, but strict_parametrization_ids is set.\n"
            "\nTest name: tests/test_instrumentation.py::TestGuessName::test_module_scope\n"
            "==== short test summary info ====\n"
            "ERROR tests/test_instrumentation.py::TestGuessName\n",
            "Duplicate parametrization IDs detected, but strict_parametrization_ids is set.",
        ),
        (
            "_____ ERROR collecting tests/test_a.py _____\n"
            "tests/test_a.py:3: in <module>\n    x = nope\n"
            "E   NameError: name 'nope' is not defined\n"
            "==== short test summary info ====\nERROR tests/test_a.py\n",
            "NameError: name 'nope' is not defined",
        ),
        ("", ""),
    ],
)
def test_first_error_line(output: str, line: str) -> None:
    assert first_error_line(output) == line
