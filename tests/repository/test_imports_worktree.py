"""The worktree's code is what the tests import, whatever the repository's environment holds.

A ``src/`` layout repository has its own virtualenv holding a test dependency Orchestra's
environment lacks, and an editable install of the user's checkout. A run's worktree
changes the code; its tests must see the change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.repository import detect_environment
from orchestra.tools import CommandLimits, Workspace, run_command
from tests.repository.fixtures import (
    build_wheel,
    commit_files,
    make_venv,
    pip_install,
    src_layout_repo,
)

LIMITS = CommandLimits(timeout_s=60, memory_mb=2048, isolate_network=True)


@pytest.fixture
def repo_with_editable_install(tmp_path: Path, site_with_pytest: Path) -> Path:
    repo = src_layout_repo(tmp_path / "mypkg")
    python = make_venv(repo / ".venv", with_pytest=site_with_pytest)
    pip_install(python, build_wheel(tmp_path / "w", "shinydep", {"shinydep.py": "TWO = 2\n"}))
    # What `pip install -e .` writes with hatchling or setuptools' compat mode.
    editable = {"_mypkg_editable.pth": f"{repo / 'src'}\n"}
    pip_install(python, build_wheel(tmp_path / "w", "mypkg", editable))
    return repo


def test_orchestra_itself_lacks_the_test_dependency() -> None:
    with pytest.raises(ImportError):
        __import__("shinydep")


def test_worktree_code_wins_over_the_editable_install_of_the_checkout(
    tmp_path: Path, repo_with_editable_install: Path
) -> None:
    repo = repo_with_editable_install
    ws = Workspace.create(repo, tmp_path / "wt", "orchestra/t")
    # The run changes behaviour in its worktree; the checkout keeps the old code.
    (ws.root / "src/mypkg/core.py").write_text("def double(x):\n    return x + x + 0\n")
    (ws.root / "tests/test_where.py").write_text(
        "import mypkg.core\n\n\ndef test_imported_from_the_worktree():\n"
        f"    assert mypkg.core.__file__.startswith({str(ws.root)!r}), mypkg.core.__file__\n"
    )
    env = detect_environment(repo, environ={})
    assert env.kind == "venv"
    result = run_command(
        list(env.command),
        cwd=ws.root,
        home=tmp_path / "home",
        limits=LIMITS,
        env_extra=env.sandbox_env(ws.root, {}),
    )
    assert result.exit_code == 0, result.combined()
    assert "2 passed" in result.stdout

    # Without the worktree first on the import path, the checkout's code is imported.
    plain = run_command(
        [str(repo / ".venv/bin/pytest"), "-q", "-p", "no:cacheprovider"]
        if (repo / ".venv/bin/pytest").exists()
        else [env.command[0], "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=ws.root,
        home=tmp_path / "home",
        limits=LIMITS,
        env_extra={"PATH": f"{repo / '.venv/bin'}:/usr/bin:/bin"},
    )
    assert plain.exit_code == 1, plain.combined()
    assert "test_imported_from_the_worktree" in plain.stdout


def test_users_pythonpath_pointing_at_the_checkout_is_moved_to_the_worktree(
    tmp_path: Path, repo_with_editable_install: Path
) -> None:
    repo = repo_with_editable_install
    ws = Workspace.create(repo, tmp_path / "wt", "orchestra/t")
    commit_files(ws.root, {"src/mypkg/extra.py": "VALUE = 'worktree'\n"}, "extra")
    (ws.root / "tests/test_extra.py").write_text(
        "from mypkg.extra import VALUE\n\n\ndef test_value():\n    assert VALUE == 'worktree'\n"
    )
    env = detect_environment(repo, environ={})
    extra = env.sandbox_env(ws.root, {"PYTHONPATH": str(repo / "src")})
    assert str(repo / "src") not in extra["PYTHONPATH"].split(":")
    result = run_command(
        list(env.command), cwd=ws.root, home=tmp_path / "home", limits=LIMITS, env_extra=extra
    )
    assert result.exit_code == 0, result.combined()
