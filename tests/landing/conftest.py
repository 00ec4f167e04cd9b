"""Real git repositories built in the test: a small Python project, branches made on it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
}

CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
TESTS = (
    "from calc import add, sub\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_sub():\n    assert sub(5, 3) == 2\n"
)


def run_git(repo: Path, *args: str) -> str:
    """git in ``repo``; stdout."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env=GIT_ENV,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on ``main`` with ``calc.py`` and its passing tests."""
    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n')
    (root / "calc.py").write_text(CALC)
    (root / "tests" / "test_calc.py").write_text(TESTS)
    (root / ".gitignore").write_text("__pycache__/\n")
    run_git(tmp_path, "init", "-q", "-b", "main", str(root))
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "base")
    return root


BranchMaker = Callable[..., str]


@pytest.fixture
def branch(repo: Path) -> BranchMaker:
    """``branch(name, {path: text}, base="main")``: a branch with one commit writing the
    files, made from ``base``; the checkout is back on ``main`` after. Returns its sha."""

    def make(name: str, files: dict[str, str], base: str = "main") -> str:
        run_git(repo, "checkout", "-q", "-b", name, base)
        for path, text in files.items():
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(text)
        run_git(repo, "add", "-A")
        run_git(repo, "commit", "-q", "-m", f"{name}: change {', '.join(files)}")
        sha = run_git(repo, "rev-parse", "HEAD")
        run_git(repo, "checkout", "-q", "main")
        return sha

    return make
