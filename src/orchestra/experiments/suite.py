"""Task suites: a repository, a base commit, the task's text and hidden acceptance tests.

:func:`suite_from_git` builds a suite from a repository's history, as SWE-bench does from
pull requests: each commit that changes both tests and implementation is a task whose
text is the commit message, whose base is the commit's parent, and whose hidden tests are
the commit's own test changes. The agents never see them; they judge the run afterwards.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from orchestra.experiments.errors import SuiteInvalid
from orchestra.repository import is_test_file, is_test_support
from orchestra.tools import git

DOC_SUFFIXES = frozenset({".md", ".rst", ".txt", ".adoc"})
"""Changes to these files are not implementation: a commit changing tests and only docs
is no task."""


@dataclass(frozen=True)
class Task:
    """One task of a suite."""

    id: str
    """The commit's short id (``3f2a1c9d0e1b``)."""
    repository: str
    """The repository's path, absolute."""
    base_commit: str
    """Where a run starts: the commit's first parent."""
    commit: str
    """The commit that solved the task (the reference solution)."""
    text: str
    """What the agents are asked: the commit message."""
    hidden_tests: dict[str, str | None] = field(default_factory=dict)
    """Test files and helpers -> their text at the commit (``None``: deleted). Never shown."""
    sources: list[str] = field(default_factory=list)
    """Implementation files the commit changed (for the report; not given to agents)."""

    @property
    def hidden_test_files(self) -> list[str]:
        """The hidden files that hold tests (what the acceptance run selects)."""
        return sorted(p for p, text in self.hidden_tests.items() if text and is_test_file(p))


@dataclass(frozen=True)
class Suite:
    """Tasks to run an experiment on."""

    name: str
    tasks: list[Task]

    def to_dict(self) -> dict[str, Any]:
        """The suite file's content."""
        return {"version": 1, "name": self.name, "tasks": [asdict(t) for t in self.tasks]}

    def save(self, path: Path) -> None:
        """Write the suite file (JSON)."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Suite:
        """Read a suite file written by :meth:`save`."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tasks = [Task(**t) for t in data["tasks"]]
            return cls(str(data.get("name") or path.stem), tasks)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SuiteInvalid(
                f"cannot read suite {path}: {exc}",
                hint="build one with: orchestra suite from-git REPO --out suite.json",
            ) from exc


def _is_implementation(path: str) -> bool:
    return not is_test_support(path) and PurePosixPath(path).suffix not in DOC_SUFFIXES


def read_task(repo: Path, commit: str) -> Task | None:
    """The task ``commit`` of ``repo`` makes, or ``None`` when it is not one (no parent, no
    test file changed, or no implementation changed)."""
    sha = git(repo, "rev-parse", "--verify", f"{commit}^{{commit}}").strip()
    parent = git(repo, "rev-parse", "--verify", "--quiet", f"{sha}^", check=False).strip()
    if not parent:
        return None
    tests: dict[str, str | None] = {}
    sources: list[str] = []
    listing = git(repo, "diff", "--name-status", "--no-renames", parent, sha)
    for line in listing.splitlines():
        status, _, path = line.partition("\t")
        if is_test_support(path):
            tests[path] = None if status.startswith("D") else git(repo, "show", f"{sha}:{path}")
        elif _is_implementation(path):
            sources.append(path)
    if not sources or not any(text and is_test_file(p) for p, text in tests.items()):
        return None
    message = git(repo, "log", "-1", "--format=%B", sha).strip()
    return Task(sha[:12], str(repo), parent, sha, message, tests, sorted(sources))


def suite_from_git(
    repo: Path, *, revision: str = "HEAD", limit: int | None = None, name: str | None = None
) -> Suite:
    """A suite of the commits reachable from ``revision`` (oldest first, merges left out)
    that change both tests and implementation; the newest ``limit`` when given."""
    repo = repo.resolve()
    if not (repo / ".git").exists():
        raise SuiteInvalid(f"{repo} is not a git repository", hint="pass a repository's root")
    shas = git(repo, "rev-list", "--no-merges", "--reverse", revision).split()
    tasks = [t for t in (read_task(repo, sha) for sha in shas) if t is not None]
    if limit is not None:
        tasks = tasks[-limit:] if limit > 0 else []
    if not tasks:
        raise SuiteInvalid(
            f"no commit of {repo} ({revision}) changes both tests and implementation",
            hint="pick a repository whose commits add tests with their code",
        )
    return Suite(name or repo.name, tasks)
