"""Preflight: the checks a run makes in its own worktree before its first model call.

0. the checkout's installed dependencies are made visible in the worktree
   (:func:`~orchestra.repository.environment.prepare_worktree`);
1. the work tree is clean;
2. the test command starts (pytest: it collects the suite);
3. the baseline suite passes. Tests that already fail are recorded as pre-existing and
   left out of the gates only when the user asks for it.

A failure raises :class:`PreflightFailed` with the first real error line and the fix;
nothing has been spent. A passing baseline is cached per commit and environment
fingerprint, so a second run on the same commit does not run it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orchestra.repository.diagnosis import diagnose
from orchestra.repository.environment import TestEnvironment, prepare_worktree
from orchestra.repository.errors import PreflightFailed
from orchestra.repository.runner import REPORTING_RUNNERS, collect_test_ids, run_test_suite
from orchestra.repository.verdict import name_ids
from orchestra.tools import CommandLimits, git

LOCKFILES = (
    "uv.lock",
    "poetry.lock",
    "requirements.txt",
    "package-lock.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "go.sum",
    "Cargo.lock",
)


@dataclass(frozen=True)
class Baseline:
    """The base commit's test suite as it ran in the repository's environment."""

    commit: str
    fingerprint: str
    test_ids: frozenset[str]
    """Every test id of the base: collected (pytest) or reported (other runners)."""
    preexisting_failures: frozenset[str] = frozenset()
    """Tests failing at the base, left out of the gates (only when the user allowed it)."""
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    cached: bool = False
    """Read from the cache rather than run now."""

    def to_json(self) -> str:
        """The cache file's content."""
        data = asdict(self)
        data["test_ids"] = sorted(self.test_ids)
        data["preexisting_failures"] = sorted(self.preexisting_failures)
        data.pop("cached")
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Baseline:
        """A baseline read back from the cache (``cached`` set)."""
        data = json.loads(text)
        return cls(
            commit=data["commit"],
            fingerprint=data["fingerprint"],
            test_ids=frozenset(data["test_ids"]),
            preexisting_failures=frozenset(data["preexisting_failures"]),
            counts=dict(data["counts"]),
            duration_s=float(data["duration_s"]),
            cached=True,
        )


def _site_listing(venv: str | None) -> list[str]:
    if not venv:
        return []
    out: list[str] = []
    for site in Path(venv).glob("lib/python*/site-packages"):
        out += sorted(p.name for p in site.iterdir())
    return out


def environment_fingerprint(env: TestEnvironment, worktree: Path) -> str:
    """A hash of what decides how the tests run: command, variables, interpreter,
    installed packages (the virtualenv's listing) and lock files."""
    interpreter = env.interpreter or (sys.executable if env.language == "python" else None)
    stat = Path(interpreter).stat() if interpreter and Path(interpreter).exists() else None
    passed = {name: os.environ.get(name, "") for name in env.pass_env}
    locks = {}
    for name in LOCKFILES:
        path = worktree / name
        if path.is_file():
            locks[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    payload = {
        "command": list(env.command),
        "kind": env.kind,
        "python_path": list(env.python_path),
        "env": dict(env.env),
        "passed": passed,
        "interpreter": [interpreter, stat.st_mtime_ns if stat else None],
        # Orchestra's own environment when the tests run in it (no virtualenv of theirs).
        "site": _site_listing(env.virtual_env or (sys.prefix if env.kind == "system" else None)),
        "locks": locks,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def check_clean(worktree: Path) -> None:
    """Refuse a work tree with uncommitted or untracked (not ignored) files."""
    status = git(worktree, "status", "--porcelain", "--untracked-files=all")
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    if dirty:
        raise PreflightFailed(
            f"the work tree has uncommitted changes: {name_ids(dirty)}",
            hint="commit or stash them; a run starts from the committed state",
            first_error=dirty[0],
        )


def _fail(
    env: TestEnvironment, what: str, output: str, *, timed_out: bool = False
) -> PreflightFailed:
    found = diagnose(output, env, timed_out=timed_out)
    return PreflightFailed(
        f"{what}: {found.first_error}" if found.first_error else what,
        hint=found.hint,
        first_error=found.first_error,
    )


def preflight(
    env: TestEnvironment,
    worktree: Path,
    *,
    home: Path,
    limits: CommandLimits,
    report_dir: Path,
    cache_dir: Path | None = None,
    allow_preexisting: bool | None = None,
) -> Baseline:
    """Check the repository in ``worktree`` before any model call; return its baseline.

    ``allow_preexisting`` (default: the repository's ``preexisting_failures`` setting)
    records tests failing at the base instead of stopping.
    """
    allow = env.preexisting_failures if allow_preexisting is None else allow_preexisting
    prepare_worktree(env, worktree)
    check_clean(worktree)
    commit = git(worktree, "rev-parse", "HEAD").strip()
    fingerprint = environment_fingerprint(env, worktree)
    cache = cache_dir / f"{commit}-{fingerprint}.json" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        cached = Baseline.from_json(cache.read_text(encoding="utf-8"))
        if allow or not cached.preexisting_failures:
            return cached
    started = time.perf_counter()
    collected = collect_test_ids(env, worktree, home=home, limits=limits)
    if collected is not None and not collected.ok:
        raise _fail(env, "the test command does not start", collected.output)
    report = run_test_suite(
        env, worktree, home=home, limits=limits, report_dir=report_dir, name="baseline"
    )
    if report.timed_out or (not report.structured and report.exit_code != 0):
        raise _fail(env, "the baseline test run failed", report.output, timed_out=report.timed_out)
    if not report.structured and env.runner in REPORTING_RUNNERS:
        raise PreflightFailed(
            f"the baseline passed but {env.runner} wrote no report, so no gate could judge "
            "its tests",
            hint=f"the test command `{' '.join(env.command)}` does not pass Orchestra's "
            f"report options on to {env.runner}; set repositories.overrides.<repository>."
            f"test_command to the command that starts {env.runner} itself",
        )
    failing = sorted(c.id for c in report.by_outcome("failed", "error"))
    if failing and not allow:
        first = next(c for c in report.cases if c.id == failing[0])
        raise PreflightFailed(
            f"{len(failing)} tests already fail at the base commit: {name_ids(failing)}",
            hint="fix them first, or let Orchestra record them as pre-existing failures and "
            "leave them out of the gates (repositories.overrides.<repository>."
            "preexisting_failures: true)",
            first_error=first.line(),
        )
    if report.structured and not report.cases and report.exit_code not in (0, 5):
        raise _fail(env, "the baseline test run failed", report.output)
    ids = collected.ids if collected is not None else frozenset(c.id for c in report.cases)
    baseline = Baseline(
        commit=commit,
        fingerprint=fingerprint,
        test_ids=ids,
        preexisting_failures=frozenset(failing),
        counts=report.counts,
        duration_s=round(time.perf_counter() - started, 3),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(baseline.to_json(), encoding="utf-8")
    return baseline
