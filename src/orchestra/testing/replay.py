"""A scripted model that replays a real git commit through the test-first pipeline.

Plan: one part holding the commit's implementation files. Red: the commit's test-side
changes (test files, ``conftest.py``, helpers under the test tree). Green: its
implementation changes. Reviewers approve; the docs and QA steps finish without edits.
The engine's gates judge the result for real, so a replay answers "would this commit,
written test-first, get through the gates?" — the experiments work and the fixture
repositories of the repository tests use it.

Like :class:`~orchestra.testing.scripted.ScriptedModel`, the reply is a pure function of
the request (step named in the first user message, and the turn), so a resumed run that
repeats a call gets the same answer.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestra.repository.changes import is_test_support
from orchestra.testing.scripted import _HEADER, _first_user_text
from orchestra.testing.steps import RecordedRequest, Reply, ToolCall

REPLAY_PART = "commit"
"""The name of the plan's single part: green steps end with ``-commit``."""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(repo), "LC_ALL": "C.UTF-8"},
    ).stdout


@dataclass(frozen=True)
class CommitChange:
    """A commit split into its test-side and implementation changes."""

    commit: str
    parent: str
    message: str
    tests: dict[str, str | None] = field(default_factory=dict)
    """Test files and helpers -> their text at the commit (``None``: deleted)."""
    sources: dict[str, str | None] = field(default_factory=dict)
    """Implementation files -> their text at the commit (``None``: deleted)."""

    @classmethod
    def read(cls, repo: Path, commit: str) -> CommitChange:
        """Read ``commit`` (and its first parent) from ``repo``."""
        sha = _git(repo, "rev-parse", "--verify", f"{commit}^{{commit}}").strip()
        parent = _git(repo, "rev-parse", f"{sha}^").strip()
        message = _git(repo, "log", "-1", "--format=%B", sha).strip()
        tests: dict[str, str | None] = {}
        sources: dict[str, str | None] = {}
        listing = _git(repo, "diff", "--name-status", "--no-renames", parent, sha)
        for line in listing.splitlines():
            status, _, path = line.partition("\t")
            text = None if status.startswith("D") else _git(repo, "show", f"{sha}:{path}")
            (tests if is_test_support(path) else sources)[path] = text
        return cls(sha, parent, message, tests, sources)

    @property
    def task(self) -> str:
        """The commit message, as the run's task."""
        return self.message

    def plan(self) -> dict[str, Any]:
        """The architect's plan: one part with every implementation file."""
        files = sorted(self.sources)
        return {
            "approach": f"Replay of commit {self.commit[:12]}: {self.message.splitlines()[0]}",
            "parts": [
                {
                    "name": REPLAY_PART,
                    "files": files,
                    "description": "the commit's implementation changes",
                }
            ],
            "tests": [f"the tests changed by commit {self.commit[:12]}"],
            "test_files": sorted(p for p, text in self.tests.items() if text is not None),
            "acceptance_criteria": ["the commit's tests pass", "the existing tests pass"],
        }


def _writes(files: dict[str, str | None]) -> list[list[ToolCall]]:
    """One turn per file written; deletions are left out (the tools cannot delete)."""
    return [
        [ToolCall("write_file", {"path": path, "content": text})]
        for path, text in sorted(files.items())
        if text is not None
    ]


@dataclass
class CommitReplay:
    """The responder: ``upstream.responder = CommitReplay.of(repo, "HEAD")``.

    Run the pipeline on a repository checked out at the commit's parent.
    """

    change: CommitChange
    latency_s: float = 0.0

    @classmethod
    def of(cls, repo: Path, commit: str, latency_s: float = 0.0) -> CommitReplay:
        """A replay of ``commit`` read from ``repo``."""
        return cls(CommitChange.read(repo, commit), latency_s)

    def __call__(self, request: RecordedRequest) -> Reply | None:
        """The reply the commit dictates for this request, or ``None`` (not a model call)."""
        body = request.json if isinstance(request.json, dict) else {}
        if "messages" not in body:
            return None
        header = dict(_HEADER.findall(_first_user_text(body)))
        step = header.get("Step", "")
        turn = sum(1 for m in body["messages"] if m.get("role") == "assistant")
        actions = self.actions(step)
        calls = actions[min(turn, len(actions) - 1)]
        return Reply(text=f"[replay {step} turn {turn}]", tool_calls=calls, delay_s=self.latency_s)

    def actions(self, step: str) -> list[list[ToolCall]]:
        """The tool calls of each turn of ``step``."""
        finish = [ToolCall("finish", {"summary": f"{step}: replayed"})]
        if step.startswith("plan"):
            return [[ToolCall("finish", {"summary": "replay plan", "plan": self.change.plan()})]]
        if step.startswith("red"):
            return [*_writes(self.change.tests), finish]
        if step.startswith("green") and step.endswith(f"-{REPLAY_PART}"):
            return [*_writes(self.change.sources), finish]
        if step.startswith("review") and step not in {"review-docs", "review-qa"}:
            verdict = {"summary": "replayed commit", "verdict": "approve", "findings": []}
            return [[ToolCall("finish", verdict)]]
        return [finish]
