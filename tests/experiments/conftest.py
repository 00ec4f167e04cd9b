"""Fixtures of the experiments tests: a small repository whose history makes a suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.testing.scripted import create_repository
from tests.engine.conftest import no_dbos_thread_outlives_its_test, pipeline_agents
from tests.repository.fixtures import commit_files

__all__ = ["history_repo", "no_dbos_thread_outlives_its_test", "pipeline_agents"]

CALC = "def add(a, b):\n    return a + b\n"
MUL = CALC + "\n\ndef mul(a, b):\n    return a * b\n"
SUB = MUL + "\n\ndef sub(a, b):\n    return a - b\n"
TEST_ADD = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
TEST_MUL = (
    "from calc import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n\n\n"
    "def test_mul_zero():\n    assert mul(0, 7) == 0\n"
)
TEST_SUB = "from calc import sub\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n"


@pytest.fixture
def history_repo(tmp_path: Path) -> Path:
    """``calc``: an initial commit, two commits adding a function with its tests (the
    tasks), and a commit touching only the README (no task)."""
    repo = create_repository(
        tmp_path / "calc",
        {"calc.py": CALC, "tests/test_add.py": TEST_ADD, "README.md": "# calc\n"},
    )
    commit_files(repo, {"calc.py": MUL, "tests/test_mul.py": TEST_MUL}, "Add calc.mul")
    commit_files(repo, {"calc.py": SUB, "tests/test_sub.py": TEST_SUB}, "Add calc.sub")
    commit_files(repo, {"README.md": "# calc\n\nAdds and multiplies.\n"}, "Say what calc does")
    return repo
