"""A run's workspace: its own git worktree and branch, and paths confined to it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestra.errors import ToolError


class WorkspaceError(ToolError):
    """A path or git operation the workspace refuses; the message says why."""


GIT_LOCK_RETRIES = 8


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run git in ``repo`` and return stdout; raise :class:`WorkspaceError` on failure.

    Worktrees of one repository share its refs; two runs committing at the same moment can
    meet a ``.lock`` file, which is retried briefly rather than failing the run.
    """
    for attempt in range(GIT_LOCK_RETRIES):
        proc = _git_once(repo, args)
        if proc.returncode == 0 or ".lock" not in proc.stderr:
            break
        time.sleep(0.05 * (attempt + 1))
    if check and proc.returncode != 0:
        raise WorkspaceError(
            f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip() or proc.stdout.strip()}",
            hint="check that the folder is a git repository with at least one commit",
        )
    return proc.stdout


def _git_once(repo: Path, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(repo),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Orchestra",
            "GIT_AUTHOR_EMAIL": "orchestra@localhost",
            "GIT_COMMITTER_NAME": "Orchestra",
            "GIT_COMMITTER_EMAIL": "orchestra@localhost",
            "LC_ALL": "C.UTF-8",
        },
    )


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Workspace:
    """The worktree of one run. Every tool path goes through :meth:`resolve`."""

    root: Path
    branch: str
    base_commit: str

    @classmethod
    def create(cls, repo: Path, worktree: Path, branch: str) -> Workspace:
        """Create (or reopen, after a crash) the worktree ``worktree`` on a new ``branch``."""
        repo = repo.resolve()
        if not (repo / ".git").exists():
            raise WorkspaceError(
                f"{repo} is not a git repository",
                hint="pass --repo the root folder of a git repository (run `git init` first)",
            )
        head = git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
        if not head:
            raise WorkspaceError(
                f"{repo} has no commits", hint="commit the current state first: git commit"
            )
        if (worktree / ".git").exists():
            base = git(worktree, "merge-base", "HEAD", head).strip() or head
            return cls(worktree.resolve(), branch, base)
        worktree.parent.mkdir(parents=True, exist_ok=True)
        # A crash part-way through `git worktree add` leaves the branch made and the
        # folder half checked out: forget that worktree and reuse the untouched branch.
        if worktree.exists():
            shutil.rmtree(worktree)
        git(repo, "worktree", "prune")
        made = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        if not made.strip():
            git(repo, "worktree", "add", "-b", branch, str(worktree), head)
        elif made.strip() == head:
            git(repo, "worktree", "add", str(worktree), branch)
        else:
            raise WorkspaceError(
                f"branch {branch} already exists in {repo} with commits of its own",
                hint=f"it is not this run's: delete it (git branch -D {branch}) or rename it",
            )
        return cls(worktree.resolve(), branch, head)

    def resolve(self, relative: str, *, must_exist: bool = False) -> Path:
        """The absolute path of ``relative`` inside the worktree, or a refusal saying why."""
        if not relative or relative.strip() != relative:
            raise WorkspaceError(
                f"invalid path {relative!r}",
                hint="give a path relative to the repository root, e.g. src/app.py",
            )
        pure = PurePosixPath(relative)
        if pure.is_absolute() or relative.startswith("~"):
            raise WorkspaceError(
                f"absolute path {relative!r} is outside the workspace",
                hint="use a path relative to the repository root",
            )
        if ".." in pure.parts:
            raise WorkspaceError(
                f"path {relative!r} climbs out of the workspace with '..'",
                hint="use a path relative to the repository root without '..'",
            )
        if pure.parts and pure.parts[0] == ".git":
            raise WorkspaceError(
                "the .git folder is managed by the engine", hint="use git_status or git_diff"
            )
        target = (self.root / pure).resolve()
        if target != self.root and self.root not in target.parents:
            raise WorkspaceError(
                f"path {relative!r} resolves outside the workspace (through a symlink)",
                hint="edit files inside the repository only",
            )
        if must_exist and not target.exists():
            raise WorkspaceError(
                f"{relative} does not exist", hint="call list_files to see what exists"
            )
        return target

    def relative(self, path: Path) -> str:
        """``path`` as a POSIX path relative to the worktree root."""
        return path.resolve().relative_to(self.root).as_posix()

    def changed_files(self, since: str | None = None) -> list[str]:
        """Files that differ from ``since`` (default: the base commit), untracked included."""
        base = since or self.base_commit
        tracked = git(self.root, "diff", "--name-only", base).splitlines()
        untracked = git(self.root, "ls-files", "--others", "--exclude-standard").splitlines()
        return sorted({p for p in tracked + untracked if p})

    def uncommitted_files(self) -> list[str]:
        """Files changed or added since the last commit of the branch."""
        return self.changed_files(since="HEAD")

    def commit(self, message: str, paths: list[str] | None = None) -> str | None:
        """Commit ``paths`` (default: everything changed); return the new commit or ``None``."""
        if paths is None:
            git(self.root, "add", "-A")
        else:
            existing = [p for p in paths if (self.root / p).exists()]
            removed = [p for p in paths if not (self.root / p).exists()]
            if existing:
                git(self.root, "add", "--", *existing)
            if removed:
                git(self.root, "rm", "--cached", "--quiet", "--ignore-unmatch", "--", *removed)
        staged = git(self.root, "diff", "--cached", "--name-only").strip()
        if not staged:
            return None
        git(self.root, "commit", "--quiet", "--no-verify", "-m", message)
        return git(self.root, "rev-parse", "HEAD").strip()

    def diff(self, since: str | None = None) -> str:
        """Unified diff from ``since`` (default base commit) to the working tree."""
        return git(self.root, "diff", since or self.base_commit)

    def file_hashes(self, paths: list[str]) -> dict[str, str]:
        """Content hash of each path (``"missing"`` when a file is gone)."""
        out: dict[str, str] = {}
        for rel in paths:
            path = self.root / rel
            out[rel] = sha256_file(path) if path.is_file() else "missing"
        return out
