"""One test-first run inside its workflow: services, typed state and the durable building
blocks (agent tasks, prepared messages, test runs, commits, knowledge writes) its phases use."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orchestra.errors
from orchestra.engine import (
    AgentOutcome,
    AgentTask,
    EngineServices,
    budget_stop,
    checkpoint,
    engine_source,
    run_agents,
)
from orchestra.pipelines.plan import Plan, PlanPart
from orchestra.pipelines.test_first.environment import cannot_start, describe
from orchestra.pipelines.test_first.state import Commit, TestFirstState, TestRunRecord
from orchestra.repository import TestEnvironment, TestReport, green_gate
from orchestra.store.tables.engine import RunRow
from orchestra.tools import CommandResult, Toolbox, Workspace, WritePolicy, git

ARCHITECT = "chief-architect"
TEST_WRITER = "test-writer"
SECURITY = "security-auditor"
REVIEWER = "code-reviewer"
DOCS = "readme-writer"
QA = "qa-lead"
MAX_FILE_CHARS = 12_000


class RunFailed(orchestra.errors.PipelineError):
    """A gate could not be met within its bounds; ends the run as failed."""


@dataclass
class TestFirstRun:
    """One run of the pipeline inside its workflow: the engine's services, the run's
    typed state, and the durable building blocks every phase uses."""

    __test__ = False  # not a pytest test class

    svc: EngineServices
    run_id: str
    state: TestFirstState = field(default_factory=TestFirstState)

    # -- helpers -----------------------------------------------------------------------
    @property
    def row(self) -> RunRow:
        """The run's row as stored now."""
        return self.svc.runs.get(self.run_id)

    def workspace(self) -> Workspace:
        """The run's git worktree."""
        return self.svc.workspace(self.row)

    def toolbox(self, policy: WritePolicy | None = None) -> Toolbox:
        """The run's tools under ``policy`` (default: no write limits)."""
        return self.svc.toolbox(self.row, policy or WritePolicy())

    def phase(self, name: str) -> None:
        """Show ``name`` as the run's current phase."""
        self.svc.runs.update(self.run_id, phase=name)

    def mark(self, phase: str, edge: str) -> None:
        """Record the time ``phase`` reached ``edge`` (as a step, so a replay keeps it)."""
        stamp = checkpoint(f"clock:{phase}:{edge}", time.time)
        self.state.phases.setdefault(phase, {})[edge] = stamp

    def task(self, step_id: str, phase: str, agent: str, message: str, **kw: Any) -> AgentTask:
        """An agent step for ``agent`` with the engine's limits and the agent's tier."""
        engine = self.svc.config.engine
        model = engine.model_override or self.svc.agents_for(self.run_id).get(agent).tier
        header = f"Phase: {phase}\nAgent: {agent}\nStep: {step_id}\n\n"
        return AgentTask(
            run_id=self.run_id,
            step_id=step_id,
            phase=phase,
            agent=agent,
            user_message=header + message,
            model=model,
            max_turns=engine.max_turns,
            max_tokens=engine.max_output_tokens,
            loop_repeats=engine.loop_repeats,
            max_corrections=engine.max_corrections,
            max_continuations=engine.max_continuations,
            **kw,
        )

    def part_task(
        self,
        step_id: str,
        phase: str,
        agent: str,
        part: PlanPart,
        build: Callable[[], str],
        protected: list[str],
    ) -> AgentTask:
        """An implementer's task confined to ``part``'s files (green and fix rounds)."""
        return self.task(
            step_id,
            phase,
            agent,
            self.prepared(step_id, build),
            allowed_writes=list(part.files),
            protected=protected,
            write_reason=f"Part {part.name!r} owns these files.",
        )

    def agents(self, tasks: list[AgentTask]) -> list[AgentOutcome]:
        """Run ``tasks`` as concurrent child workflows; a budget or model failure ends
        the run."""
        outcomes = run_agents(self.run_id, tasks)
        for outcome in outcomes:
            if outcome.status == "budget":
                raise RunFailed(budget_stop(self.run_id, outcome.step_id, outcome.summary))
            if outcome.status == "model_error":
                raise RunFailed(f"model call failed in {outcome.step_id}: {outcome.summary}")
        return outcomes

    def files_block(self, paths: list[str]) -> str:
        """The contents of ``paths`` in the worktree, as Markdown sections."""
        root = self.workspace().root
        parts = []
        for rel in paths:
            path = root / rel
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")[:MAX_FILE_CHARS]
                parts.append(f"### {rel}\n```\n{text}\n```")
            else:
                parts.append(f"### {rel}\n(does not exist yet)")
        return "\n\n".join(parts)

    def brief(self, plan: Plan | None = None, summaries: list[str] | None = None) -> str:
        """The task, the plan and earlier steps' summaries: what every agent starts from."""
        text = f"## Task\n{self.row.task}\n"
        if plan is not None:
            text += "\n# Plan\n" + plan.markdown() + "\n"
        if summaries:
            text += "\n## Earlier steps\n" + "\n".join(f"- {s}" for s in summaries) + "\n"
        return text

    def prepared(self, name: str, build: Callable[[], str]) -> str:
        """Build a message inside a step, so a replay sees the text the first run saw."""
        ref = f"messages/{name}.md"

        def make() -> str:
            return self.svc.artifacts.put_text(self.run_id, ref, build(), "message")

        checkpoint(f"message:{name}", make)
        return self.svc.artifacts.get_text(self.run_id, ref)

    def show_tests(self, name: str, verdict: str, counts: dict[str, Any]) -> None:
        """Record the latest test result (``tests/latest.json``), which the live view and
        ``orchestra status`` show: what ran (``name``), the verdict in words, the counts."""
        latest = {"name": name, "verdict": verdict, **counts}
        self.svc.artifacts.put_json(self.run_id, "tests/latest.json", latest, "test-status")

    def environment(self) -> TestEnvironment:
        """How the repository's tests run (its own environment; settings first)."""
        return self.svc.test_environment(self.row.repo_path)

    def preexisting(self) -> list[str]:
        """Tests failing at the base that the user chose to leave out of the gates."""
        baseline = self.state.baseline
        return list(baseline.preexisting) if baseline is not None else []

    def test_run(self, name: str) -> TestRunRecord:
        """Run the whole suite in a step, in the repository's environment, and judge it
        per test case (green: everything passes bar pre-existing failures). The log
        (verdict, then the runner's output) goes to the artefact store."""

        def go() -> dict[str, Any]:
            home = self.svc.artifacts.run_dir(self.run_id) / "home"
            started = time.perf_counter()
            env = self.environment()
            result = green_gate(
                env,
                self.workspace().root,
                home=home,
                limits=self.svc.limits(),
                report_dir=home / "reports",
                preexisting=self.preexisting(),
                name=name,
            )
            report = result.report
            text = result.verdict.reason + "\n\n" + report.output
            log = self.svc.artifacts.put_text(self.run_id, f"tests/{name}.log", text, "test-log")
            summary = {
                "exit_code": report.exit_code,
                "ok": result.verdict.accepted,
                "duration_s": round(time.perf_counter() - started, 3),
                "timed_out": report.timed_out,
                **report.counts,
            }
            self.show_tests(name, "pass" if summary["ok"] else "FAIL", summary)
            cases = [[c.id, c.outcome, c.message] for c in report.cases]
            return {
                **summary,
                "log": log,
                "cases": cases,
                "cannot_start": start_failure(env, report),
            }

        record = TestRunRecord.from_step(checkpoint(f"tests:{name}", go))
        self.refuse_environment(record.cannot_start)
        return record

    def refuse_environment(self, cause: str | None) -> None:
        """End the run when the test command could not start: the environment's fault,
        which no agent can fix (so no retry is spent on it)."""
        if cause is not None:
            raise RunFailed(describe(self.svc.test_command(self.row.repo_path), cause))

    def commit(self, name: str, message: str, paths: list[str] | None) -> str | None:
        """Commit ``paths`` on the run's branch (a step); returns the sha, if any."""

        def go() -> str | None:
            ws = self.workspace()
            sha = ws.commit(message, paths)
            if sha is None and git(ws.root, "log", "-1", "--format=%s").strip() == message:
                # Committed before a crash that came ahead of this step's checkpoint.
                sha = git(ws.root, "rev-parse", "HEAD").strip()
            return sha

        sha: str | None = checkpoint(f"commit:{name}", go)
        if sha:
            self.state.commits.append(Commit(sha, message))
        return sha

    def store_knowledge(self, name: str, text: str, kind: str, agent: str | None = None) -> None:
        """Keep ``text`` in the knowledge store, when the engine has one (as a step).

        The step is recorded even without a store: a run resumed by a process that has
        one (or lacks one) must replay the same sequence of steps.
        """
        knowledge = self.svc.knowledge
        project = Path(self.row.repo_path).name

        def go() -> str:
            if knowledge is None:
                return ""
            source = engine_source(self.run_id, agent)
            return str(knowledge.add(text, kind=kind, project=project, source=source))

        try:
            checkpoint(f"knowledge:{name}", go)
        except Exception as exc:  # the knowledge store refusing (e.g. a secret) is not fatal
            self.state.warnings.append(f"knowledge store: {exc}")


Phase = Callable[[TestFirstRun], None]
"""A phase: reads what earlier phases left in ``run.state`` and adds its own part."""


def start_failure(env: TestEnvironment, report: TestReport) -> str | None:
    """Why the test command could not start at all (no report, and the output says so),
    else ``None``: that is the environment's fault, not the agents'."""
    if report.structured:
        return None
    result = CommandResult(
        tuple(env.command), report.exit_code, "", report.output, 0.0, report.timed_out, False
    )
    return cannot_start(result, list(env.command))


def prepare_workspace(run: TestFirstRun) -> None:
    """The run's own git worktree and branch (a step: created once, replayed after)."""
    row = run.row

    def go() -> dict[str, str]:
        ws = Workspace.create(Path(row.repo_path), Path(str(row.worktree_path)), str(row.branch))
        return {"root": str(ws.root), "base": ws.base_commit}

    info = checkpoint("workspace", go)
    run.svc.runs.update(run.run_id, worktree_path=info["root"], base_commit=info["base"])
