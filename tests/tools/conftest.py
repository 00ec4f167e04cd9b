from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits, Toolbox, Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    repo = create_repository(
        tmp_path / "repo",
        {
            "app.py": "def greet():\n    return 'hi'\n\n\ndef bye():\n    return 'bye'\n",
            "tests/test_app.py": (
                "from app import greet\n\n\ndef test_greet():\n    assert greet() == 'hi'\n"
            ),
        },
    )
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
