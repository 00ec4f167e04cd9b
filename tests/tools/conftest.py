from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestra.tools import CommandLimits, Toolbox, Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text(
        "def greet():\n    return 'hi'\n\n\ndef bye():\n    return 'bye'\n"
    )
    (repo / "tests").mkdir()
    (repo / "tests" / "test_app.py").write_text(
        "from app import greet\n\n\ndef test_greet():\n    assert greet() == 'hi'\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "init"],
    ):
        subprocess.run(argv, cwd=repo, check=True, env=env)
    return Workspace.create(repo, tmp_path / "wt", "orchestra/test")


@pytest.fixture
def toolbox(workspace: Workspace, tmp_path: Path) -> Toolbox:
    return Toolbox(
        workspace=workspace,
        home=tmp_path / "cmd-home",
        test_command=["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        allowed_commands=["python", "git"],
        limits=CommandLimits(timeout_s=20, memory_mb=1024),
    )
