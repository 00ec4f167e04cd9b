"""``orchestra doctor``: how a repository's tests will run, checked at $0.

No model is called. The doctor resolves the environment, runs the preflight in a
temporary worktree of ``HEAD`` (as a run would), checks that coverage can be measured in
the same environment, and lists what to change.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.config import OrchestraConfig
from orchestra.errors import OrchestraError
from orchestra.repository.coverage_plan import CoveragePlan, coverage_plan
from orchestra.repository.diagnosis import install_hint
from orchestra.repository.environment import TestEnvironment, resolve_environment, settings_for
from orchestra.repository.errors import PreflightFailed, RepositoryError
from orchestra.repository.keys import repository_keys
from orchestra.repository.preflight import Baseline, preflight
from orchestra.tools import CommandLimits, git, run_command


@dataclass
class DoctorReport:
    """Everything ``orchestra doctor`` found about one repository."""

    repository: Path
    keys: list[str]
    """The keys this repository can be configured under in ``repositories.overrides``."""
    configured_under: str | None
    environment: TestEnvironment
    coverage: CoveragePlan
    baseline: Baseline | None = None
    failure: PreflightFailed | None = None
    uncommitted: list[str] = field(default_factory=list)
    """Uncommitted files in the user's checkout (a run does not see them)."""
    advice: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The preflight passed: a run can start."""
        return self.failure is None and self.baseline is not None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (``--json``)."""
        env = self.environment
        return {
            "repository": str(self.repository),
            "ok": self.ok,
            "keys": self.keys,
            "configured_under": self.configured_under,
            "environment": {
                "kind": env.kind,
                "language": env.language,
                "runner": env.runner,
                "command": list(env.command),
                "source": env.source,
                "virtual_env": env.virtual_env,
                "python_path": list(env.python_path),
                "pass_env": list(env.pass_env),
            },
            "baseline": None
            if self.baseline is None
            else {
                "commit": self.baseline.commit,
                "tests": len(self.baseline.test_ids),
                "counts": self.baseline.counts,
                "preexisting_failures": sorted(self.baseline.preexisting_failures)[:20],
                "cached": self.baseline.cached,
            },
            "failure": None
            if self.failure is None
            else {
                "message": self.failure.message,
                "first_error": self.failure.first_error,
                "hint": self.failure.hint,
            },
            "coverage": {
                "tool": self.coverage.tool,
                "command": list(self.coverage.command) if self.coverage.command else None,
                "reason": self.coverage.reason,
            },
            "uncommitted": self.uncommitted[:20],
            "advice": self.advice,
        }


def _coverage_importable(plan: CoveragePlan, env: TestEnvironment, home: Path) -> bool | None:
    if plan.tool != "coverage.py" or not plan.interpreter:
        return None
    python = plan.interpreter
    if not Path(python).is_absolute() and shutil.which(python) is None:
        return None
    result = run_command(
        [python, "-c", "import coverage"],
        cwd=env.repository,
        home=home,
        limits=CommandLimits(timeout_s=30),
        env_extra=env.sandbox_env(env.repository),
    )
    return result.exit_code == 0


def run_doctor(
    repo: Path,
    config: OrchestraConfig | None = None,
    *,
    home: Path,
    limits: CommandLimits,
    cache_dir: Path | None = None,
    allow_preexisting: bool | None = None,
) -> DoctorReport:
    """Check ``repo`` the way a run would, without any model call."""
    repo = repo.resolve()
    if not (repo / ".git").exists():
        raise RepositoryError(
            f"{repo} is not a git repository",
            hint="pass --repo the root folder of a git repository",
        )
    config = config or OrchestraConfig()
    env = resolve_environment(repo, config)
    found = settings_for(repo, config.repositories)
    report = DoctorReport(
        repository=repo,
        keys=repository_keys(repo),
        configured_under=found[0] if found else None,
        environment=env,
        coverage=coverage_plan(env, home / "coverage"),
    )
    status = git(repo, "status", "--porcelain")
    report.uncommitted = [line[3:] for line in status.splitlines() if line.strip()]
    report.advice += list(env.notes)
    scratch = Path(tempfile.mkdtemp(prefix="orchestra-doctor-", dir=home))
    worktree = scratch / "worktree"
    try:
        head = git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
        if not head:
            raise RepositoryError(f"{repo} has no commits", hint="commit the current state first")
        git(repo, "worktree", "add", "--detach", str(worktree), head)
        try:
            report.baseline = preflight(
                env,
                worktree,
                home=scratch / "home",
                limits=limits,
                report_dir=scratch / "reports",
                cache_dir=cache_dir,
                allow_preexisting=allow_preexisting,
            )
        except PreflightFailed as exc:
            report.failure = exc
            if exc.hint:
                report.advice.append(exc.hint)
        except OrchestraError as exc:
            report.failure = PreflightFailed(exc.message, hint=exc.hint)
    finally:
        git(repo, "worktree", "remove", "--force", str(worktree), check=False)
        git(repo, "worktree", "prune", check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    importable = _coverage_importable(report.coverage, env, home)
    if importable is False:
        report.advice.append(
            f"coverage.py is not installed in the tests' environment: "
            f"{install_hint(env, 'coverage')} (until then changed-line coverage is not "
            "measured)"
        )
        report.coverage = CoveragePlan(
            None, None, reason="not measured: coverage.py is not installed in the environment"
        )
    if report.uncommitted:
        report.advice.append(
            f"{len(report.uncommitted)} uncommitted files in the checkout: a run starts from "
            "the last commit and will not see them"
        )
    if env.explicit is False and report.configured_under is None and not report.ok:
        report.advice.append(
            f"to set the test command yourself, add to orchestra.yaml:\n"
            f"repositories:\n  overrides:\n    {report.keys[-1]}:\n"
            f"      test_command: [...]"
        )
    return report
