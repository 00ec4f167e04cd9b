"""Landing a queued branch: rebase onto its target in a scratch worktree, run the
repository's tests there, and fast-forward the target only if they pass.

Nothing touches the target branch until the last step, a compare-and-set: ``git update-ref
NEW OLD`` (or ``git merge --ff-only`` when the checkout has the target checked out, so its
files follow). A rebase conflict or a red suite leaves the entry with its reason (and the
conflicting files) for a person; main stays where it was.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.config import OrchestraConfig
from orchestra.errors import OrchestraError
from orchestra.landing import queue
from orchestra.landing.queue import QueueEntry
from orchestra.repository import (
    TestEnvironment,
    TestReport,
    prepare_worktree,
    resolve_environment,
    run_test_suite,
)
from orchestra.store import Database
from orchestra.tools import CommandLimits, WorkspaceError, git

FAILED_SHOWN = 10
"""Failing test ids named in a refusal's reason."""


@dataclass(frozen=True)
class Outcome:
    """What landing one entry came to: a status and the values to record with it."""

    status: str
    reason: str | None = None
    files: tuple[str, ...] = ()
    onto_before: str | None = None
    landed_commit: str | None = None


@dataclass
class Lander:
    """Works through one repository's queue at a time, holding its lock while it does."""

    db: Database
    config: OrchestraConfig = field(default_factory=OrchestraConfig)
    limits: CommandLimits = field(default_factory=CommandLimits)
    holder: str = field(default_factory=queue.holder_id)
    scratch_root: Path | None = None
    """Where scratch worktrees go (a temporary folder by default)."""
    environment: Callable[[Path], TestEnvironment] | None = None
    """How the tests run; the repository package's detection by default."""

    @classmethod
    def for_config(cls, db: Database, config: OrchestraConfig) -> Lander:
        """A lander whose test commands have ``engine:``'s limits (time, memory, network)."""
        engine = config.engine
        limits = CommandLimits(
            timeout_s=engine.command_timeout_s,
            memory_mb=engine.command_memory_mb,
            isolate_network=engine.isolate_network,
        )
        return cls(db, config, limits)

    def process(self, repo: str) -> list[QueueEntry]:
        """Land ``repo``'s queued entries in order; the entries this lander finished.

        Returns at once (with nothing) when another lander holds the repository's lock: it
        works through the queue until it is empty, entries added meanwhile included.
        """
        done: list[QueueEntry] = []
        while queue.acquire(self.db, repo, self.holder):
            try:
                while (entry := queue.take_next(self.db, repo)) is not None:
                    try:
                        outcome = self.land(entry)
                    except BaseException as exc:  # recorded, then raised on
                        queue.finish(self.db, entry.id, "error", reason=f"lander crashed: {exc!r}")
                        raise
                    done.append(
                        queue.finish(
                            self.db,
                            entry.id,
                            outcome.status,
                            reason=outcome.reason,
                            files=outcome.files,
                            onto_before=outcome.onto_before,
                            landed_commit=outcome.landed_commit,
                        )
                    )
                    if not queue.refresh(self.db, repo, self.holder):
                        return done  # our lease ran out and another lander took over
            finally:
                queue.release(self.db, repo, self.holder)
            # An entry added after the last look but before the release found the lock
            # taken: look again now that it is free.
            if not queue.entries(self.db, repo, status="queued"):
                break
        return done

    def land(self, entry: QueueEntry) -> Outcome:
        """Rebase, test and fast-forward one entry (the caller holds the lock)."""
        repo = Path(entry.repo)
        scratch = Path(tempfile.mkdtemp(prefix="orchestra-land-", dir=self.scratch_root))
        worktree = scratch / "worktree"
        try:
            return self._land(entry, repo, scratch, worktree)
        except OrchestraError as exc:  # git failed, the environment is not there ...
            return Outcome("error", reason=exc.message)
        finally:
            git(repo, "worktree", "remove", "--force", str(worktree), check=False)
            git(repo, "worktree", "prune", check=False)
            shutil.rmtree(scratch, ignore_errors=True)

    def _land(self, entry: QueueEntry, repo: Path, scratch: Path, worktree: Path) -> Outcome:
        onto_sha = _resolve(repo, entry.onto)
        tip = _resolve(repo, entry.branch)
        if onto_sha is None or tip is None:
            missing = entry.onto if onto_sha is None else entry.branch
            return Outcome("error", reason=f"branch {missing} does not exist in {repo}")
        git(repo, "worktree", "add", "--detach", str(worktree), tip)
        conflict = _rebase(worktree, onto_sha)
        if conflict is not None:
            return Outcome(
                "conflict",
                reason=f"{entry.branch} does not rebase cleanly onto {entry.onto} "
                f"({onto_sha[:10]}): {len(conflict)} conflicting file(s)",
                files=conflict,
                onto_before=onto_sha,
            )
        rebased = git(worktree, "rev-parse", "HEAD").strip()
        if rebased == onto_sha:
            return Outcome(
                "landed",
                reason=f"nothing to land: every change of {entry.branch} is already on "
                f"{entry.onto}",
                onto_before=onto_sha,
                landed_commit=onto_sha,
            )
        report = self._test(repo, worktree, scratch)
        if not report.passed:
            return Outcome(
                "failed",
                reason=_red_reason(entry, onto_sha, report),
                onto_before=onto_sha,
            )
        moved = fast_forward(repo, entry.onto, onto_sha, rebased)
        if moved is not None:
            return Outcome("error", reason=moved, onto_before=onto_sha)
        return Outcome("landed", onto_before=onto_sha, landed_commit=rebased)

    def _test(self, repo: Path, worktree: Path, scratch: Path) -> TestReport:
        env = (self.environment or (lambda r: resolve_environment(r, self.config)))(repo)
        prepare_worktree(env, worktree)
        return run_test_suite(
            env,
            worktree,
            home=scratch / "home",
            limits=self.limits,
            report_dir=scratch / "reports",
            name="land",
        )


def _resolve(repo: Path, branch: str) -> str | None:
    sha = git(
        repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False
    )
    return sha.strip() or None


def _rebase(worktree: Path, onto: str) -> tuple[str, ...] | None:
    """Rebase the worktree's detached ``HEAD`` onto ``onto``; the conflicting files, or
    ``None`` when it applied cleanly (the rebase is aborted on a conflict)."""
    try:
        git(worktree, "rebase", "--no-autostash", onto)
        return None
    except WorkspaceError as exc:
        files = git(worktree, "diff", "--name-only", "--diff-filter=U", check=False).split()
        git(worktree, "rebase", "--abort", check=False)
        if not files:
            raise WorkspaceError(f"the rebase onto {onto[:10]} failed: {exc.message}") from exc
        return tuple(sorted(files))


def _red_reason(entry: QueueEntry, onto: str, report: TestReport) -> str:
    failing = [c.id for c in report.by_outcome("failed", "error")]
    if report.timed_out:
        what = "the tests timed out"
    elif failing:
        shown = ", ".join(failing[:FAILED_SHOWN])
        more = f" and {len(failing) - FAILED_SHOWN} more" if len(failing) > FAILED_SHOWN else ""
        what = f"{len(failing)} test(s) failed: {shown}{more}"
    else:
        what = f"the test command exited with {report.exit_code}"
    return f"tests are red after rebasing {entry.branch} onto {entry.onto} ({onto[:10]}): {what}"


def fast_forward(repo: Path, onto: str, expected: str, new: str) -> str | None:
    """Move ``onto`` from ``expected`` to ``new`` (a descendant); ``None`` when it moved,
    else why not (the branch moved meanwhile, or the checkout's files are in the way)."""
    head = git(repo, "symbolic-ref", "--quiet", "HEAD", check=False).strip()
    if head == f"refs/heads/{onto}":
        if git(repo, "rev-parse", "HEAD").strip() != expected:
            return f"{onto} moved while the tests ran; queue the branch again"
        try:
            git(repo, "merge", "--ff-only", "--quiet", new)
        except WorkspaceError as exc:
            return f"the checkout could not fast-forward {onto}: {exc.message}"
        return None
    try:
        git(repo, "update-ref", f"refs/heads/{onto}", new, expected)
    except WorkspaceError:
        return f"{onto} moved while the tests ran; queue the branch again"
    return None
