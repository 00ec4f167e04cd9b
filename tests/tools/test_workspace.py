"""A run's worktree is created once and reopened after a crash, even one that cut
`git worktree add` short (the branch made, the folder half checked out)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestra.testing.scripted import create_repository
from orchestra.tools import Workspace
from orchestra.tools.workspace import WorkspaceError


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return create_repository(tmp_path / "repo", {"app.py": "x = 1\n"})


def test_a_worktree_left_half_made_by_a_crash_is_made_again(repo: Path, tmp_path: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    # As a crash leaves it: the branch made, the folder there without its .git file.
    _git(repo, "branch", "orchestra/r1", head)
    partial = tmp_path / "runs" / "r1" / "worktree"
    partial.mkdir(parents=True)
    (partial / "app.py").write_text("x = 1\n")
    ws = Workspace.create(repo, partial, "orchestra/r1")
    assert ws.base_commit == head and ws.branch == "orchestra/r1"
    assert _git(partial, "rev-parse", "--abbrev-ref", "HEAD") == "orchestra/r1"
    assert (partial / "app.py").read_text() == "x = 1\n"
    # Reopened again (a later replay): the same worktree.
    assert Workspace.create(repo, partial, "orchestra/r1").root == ws.root


def test_a_branch_with_commits_of_its_own_is_not_taken_over(repo: Path, tmp_path: Path) -> None:
    _git(repo, "checkout", "-q", "-b", "orchestra/r2")
    (repo / "other.py").write_text("y = 2\n")
    _git(repo, "add", "other.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "someone's work")
    _git(repo, "checkout", "-q", "-")
    with pytest.raises(WorkspaceError, match=r"already exists .* with commits of its own") as e:
        Workspace.create(repo, tmp_path / "wt", "orchestra/r2")
    assert e.value.hint is not None and "git branch -D orchestra/r2" in e.value.hint
