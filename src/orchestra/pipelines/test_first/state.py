"""The typed state one test-first run's phases share.

Every value here is rebuilt from recorded step outputs as the workflow runs (or replays),
so it never needs storing itself: DBOS records the steps, the state follows from them.
Model- and tool-produced documents (bandit findings, review findings, coverage) stay
JSON-shaped mappings, as they go into the report as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from orchestra.pipelines.plan import Plan


def _known(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of dataclass ``cls`` (a recorded step's
    output may carry more, e.g. from a newer gate)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class TestRunRecord:
    """A test run, as its ``tests:<name>`` step recorded it."""

    __test__ = False  # not a pytest test class

    exit_code: int
    ok: bool
    duration_s: float
    timed_out: bool
    log: str
    """Artefact reference of the run's output."""
    passed: int = 0
    failed: int = 0
    error: int = 0
    skipped: int = 0
    cases: list[list[str]] = field(default_factory=list)
    """``[test id, outcome, message]`` per test, when the runner reports them."""
    cannot_start: str | None = None
    """Why the test command could not start at all (the environment, not the tests)."""

    @classmethod
    def from_step(cls, data: Mapping[str, Any]) -> TestRunRecord:
        """From the recorded step output."""
        return cls(**_known(cls, data))


@dataclass
class GreenResult(TestRunRecord):
    """A green (or fix) gate: the test run plus what the implementers are told."""

    feedback: str = ""
    tampered: list[str] = field(default_factory=list)
    """Red tests found modified (and restored) before the run."""
    iterations: int = 0
    """Implementation rounds it took (set when the gate passed)."""


@dataclass
class RedVerdict:
    """The red gate's verdict on one attempt, as its ``gate:red:<n>`` step recorded it."""

    accepted: bool
    reason: str
    output: str
    new_tests: list[str]
    log: str
    counts: dict[str, int]
    attempt: int
    headline: str = ""
    """The verdict's problems on one line (no ids): what the report lists."""
    cannot_start: str | None = None
    """Why the test command could not start at all (the environment, not the tests)."""

    @classmethod
    def from_step(cls, data: Mapping[str, Any]) -> RedVerdict:
        """From the recorded step output."""
        return cls(**_known(cls, data))


@dataclass
class BaselineRecord:
    """The preflight's baseline, as its ``preflight`` step recorded it."""

    commit: str
    environment: str
    """How the tests run: command, environment kind and where that was decided."""
    ids: str
    """Artefact reference of the base's test ids (a JSON list)."""
    tests: int
    preexisting: list[str] = field(default_factory=list)
    """Tests failing at the base, left out of the gates (only when the user allowed it)."""
    counts: dict[str, int] = field(default_factory=dict)
    cached: bool = False

    @classmethod
    def from_step(cls, data: Mapping[str, Any]) -> BaselineRecord:
        """From the recorded step output."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Commit:
    """A commit the run made on its branch."""

    sha: str
    message: str


@dataclass(frozen=True)
class ReviewVerdict:
    """What one review agent concluded."""

    agent: str
    status: str
    verdict: str | None
    findings: list[Any]
    summary: str


@dataclass(frozen=True)
class FixRecord:
    """The fix round that made the tests pass again after blocking findings."""

    rounds: int
    findings: int
    tests: str


@dataclass
class TestFirstState:
    """What the phases of one run hand each other, and what the report is built from."""

    __test__ = False  # not a pytest test class

    plan: Plan | None = None
    baseline: BaselineRecord | None = None
    """The preflight's baseline (the base's test ids, pre-existing failures)."""
    tests: list[str] = field(default_factory=list)
    """The red tests, committed and protected from then on."""
    summaries: list[str] = field(default_factory=list)
    """One line per finished phase, given to later agents instead of transcripts."""
    red: RedVerdict | None = None
    red_rejections: list[str] = field(default_factory=list)
    test_hashes: dict[str, str] = field(default_factory=dict)
    """Content hash of each protected test file, as committed."""
    green: GreenResult | None = None
    bandit: dict[str, Any] | None = None
    review: dict[str, ReviewVerdict] | None = None
    blocking: list[dict[str, Any]] = field(default_factory=list)
    fixes: FixRecord | None = None
    coverage: dict[str, Any] | None = None
    commits: list[Commit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    """Start and end time of each phase (recorded as steps, so a replay keeps them)."""

    def require_plan(self) -> Plan:
        """The plan, which every phase after ``plan`` relies on."""
        if self.plan is None:
            raise RuntimeError("the plan phase has not run")  # a phase order bug
        return self.plan
