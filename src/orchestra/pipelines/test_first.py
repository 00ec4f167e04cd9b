"""The test-first pipeline: plan -> red -> green -> review (parallel) -> finish.

Every phase is durable: agents are child workflows, gates and commits are DBOS steps.
Code between steps only reads recorded outputs, so replaying it after a crash is safe.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dbos import DBOS

from orchestra.engine.agent import AgentOutcome, AgentTask
from orchestra.engine.runtime import (
    EngineServices,
    checkpoint,
    engine_source,
    run_agents,
    services,
)
from orchestra.pipelines import gates
from orchestra.pipelines.plan import Plan, parse_plan
from orchestra.pipelines.report import build_report, changed_line_coverage, run_bandit
from orchestra.store.tables.engine import RunRow
from orchestra.tools.toolbox import WritePolicy
from orchestra.tools.workspace import Workspace, git

ARCHITECT = "chief-architect"
TEST_WRITER = "test-writer"
SECURITY = "security-auditor"
REVIEWER = "code-reviewer"
DOCS = "readme-writer"
QA = "qa-lead"
MAX_FILE_CHARS = 12_000


class RunFailed(Exception):
    """A gate could not be met within its bounds; ends the run as failed."""


@dataclass
class PhaseClock:
    """Durations of phases, recorded as steps so a replay keeps the original times."""

    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    def mark(self, phase: str, edge: str) -> None:
        stamp = checkpoint(f"clock:{phase}:{edge}", time.time)
        self.phases.setdefault(phase, {})[edge] = stamp


@dataclass
class TestFirstPipeline:
    """One run of the pipeline inside its workflow."""

    svc: EngineServices
    run_id: str
    clock: PhaseClock = field(default_factory=PhaseClock)
    record: dict[str, Any] = field(default_factory=dict)

    # -- helpers -----------------------------------------------------------------------
    @property
    def run(self) -> RunRow:
        return self.svc.runs.get(self.run_id)

    def workspace(self) -> Workspace:
        return self.svc.workspace(self.run)

    def toolbox(self, policy: WritePolicy | None = None) -> Any:
        return self.svc.toolbox(self.run, policy or WritePolicy())

    def phase(self, name: str) -> None:
        self.svc.runs.update(self.run_id, phase=name)

    def task(self, step_id: str, phase: str, agent: str, message: str, **kw: Any) -> AgentTask:
        engine = self.svc.config.engine
        model = engine.model_override or self.svc.agents.get(agent).tier
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
            **kw,
        )

    def agents(self, tasks: list[AgentTask]) -> list[AgentOutcome]:
        outcomes = run_agents(self.run_id, tasks)
        for outcome in outcomes:
            if outcome.status == "budget":
                raise RunFailed(f"budget exhausted during {outcome.step_id}: {outcome.summary}")
            if outcome.status == "model_error":
                raise RunFailed(f"model call failed in {outcome.step_id}: {outcome.summary}")
        return outcomes

    def files_block(self, paths: list[str]) -> str:
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
        text = f"## Task\n{self.run.task}\n"
        if plan is not None:
            text += "\n# Plan\n" + plan.markdown() + "\n"
        if summaries:
            text += "\n## Earlier steps\n" + "\n".join(f"- {s}" for s in summaries) + "\n"
        return text

    def prepared(self, name: str, build: Any) -> str:
        """Build a message inside a step, so a replay sees the text the first run saw."""
        ref = f"messages/{name}.md"

        def make() -> str:
            return self.svc.artifacts.put_text(self.run_id, ref, build(), "message")

        checkpoint(f"message:{name}", make)
        return self.svc.artifacts.get_text(self.run_id, ref)

    def test_run(
        self, name: str, paths: list[str], ignore: list[str] | None = None
    ) -> dict[str, Any]:
        """Run tests in a step; the log goes to the artefact store."""

        def go() -> dict[str, Any]:
            report = self.svc.artifacts.run_dir(self.run_id) / "home" / f"{name}.xml"
            run = gates.run_tests(self.toolbox(), paths, report, ignore)
            log = self.svc.artifacts.put_text(
                self.run_id, f"tests/{name}.log", run.result.combined(60_000), "test-log"
            )
            self.svc.artifacts.put_json(
                self.run_id, "tests/latest.json", {"name": name, **run.summary()}, "test-status"
            )
            return {
                **run.summary(),
                "log": log,
                "cases": [[c.name, c.outcome, c.message[:2000]] for c in run.cases],
            }

        result: dict[str, Any] = checkpoint(f"tests:{name}", go)
        return result

    def commit(self, name: str, message: str, paths: list[str] | None) -> str | None:
        def go() -> str | None:
            ws = self.workspace()
            sha = ws.commit(message, paths)
            if sha is None and git(ws.root, "log", "-1", "--format=%s").strip() == message:
                # Committed before a crash that came ahead of this step's checkpoint.
                sha = git(ws.root, "rev-parse", "HEAD").strip()
            return sha

        sha: str | None = checkpoint(f"commit:{name}", go)
        if sha:
            self.record.setdefault("commits", []).append({"sha": sha, "message": message})
        return sha

    # -- phases ------------------------------------------------------------------------
    def prepare(self) -> None:
        run = self.run

        def go() -> dict[str, str]:
            ws = Workspace.create(
                Path(run.repo_path), Path(str(run.worktree_path)), str(run.branch)
            )
            return {"root": str(ws.root), "base": ws.base_commit}

        info = checkpoint("workspace", go)
        self.svc.runs.update(self.run_id, worktree_path=info["root"], base_commit=info["base"])

    def plan(self) -> Plan:
        self.phase("plan")
        self.clock.mark("plan", "start")
        feedback = ""
        for attempt in range(1, 3):

            def build(feedback: str = feedback) -> str:
                listing = git(self.workspace().root, "ls-files")
                readme = self.files_block(["README.md"]) if "README.md" in listing else ""
                text = self.brief() + f"\n## Repository files\n{listing}\n{readme}\n"
                text += (
                    "\nCall `finish` with a `plan`: approach, parts (each with the files it "
                    "owns; parts must not share files), tests, test_files, acceptance_criteria."
                )
                if feedback:
                    text += f"\n\n## Your previous plan was rejected\n{feedback}"
                return text

            message = self.prepared(f"plan-{attempt}", build)
            [outcome] = self.agents(
                [self.task(f"plan-{attempt}", "plan", ARCHITECT, message, allowed_writes=[])]
            )
            plan, problem = parse_plan(outcome.result.get("plan"))
            if plan is not None:
                break
            feedback = problem
        else:
            raise RunFailed(f"plan gate: no valid plan after 2 attempts ({feedback})")
        self.svc.artifacts.put_json(self.run_id, "plan.json", plan.model_dump(), "plan")
        self.svc.artifacts.put_text(self.run_id, "plan.md", plan.markdown(), "plan")
        self.store_knowledge(
            "plan", f"Plan for '{self.run.task}':\n{plan.markdown()}", "decision", ARCHITECT
        )
        self.record["plan"] = plan.model_dump()
        self.record["summaries"] = [f"plan ({outcome.agent}): {outcome.summary[:300]}"]
        self.clock.mark("plan", "end")
        return plan

    def store_knowledge(self, name: str, text: str, kind: str, agent: str | None = None) -> None:
        """Keep ``text`` in the knowledge store, when the engine has one (as a step).

        The step is recorded even without a store: a run resumed by a process that has
        one (or lacks one) must replay the same sequence of steps.
        """
        knowledge = self.svc.knowledge
        project = Path(self.run.repo_path).name

        def go() -> str:
            if knowledge is None:
                return ""
            source = engine_source(self.run_id, agent)
            return str(knowledge.add(text, kind=kind, project=project, source=source))

        try:
            checkpoint(f"knowledge:{name}", go)
        except Exception as exc:  # the knowledge store refusing (e.g. a secret) is not fatal
            self.record.setdefault("warnings", []).append(f"knowledge store: {exc}")

    def red(self, plan: Plan) -> list[str]:
        self.phase("red")
        self.clock.mark("red", "start")
        feedback = ""
        pytest_runner = gates.is_pytest(self.svc.test_command(self.run.repo_path))
        for attempt in range(1, self.svc.config.engine.red_attempts + 1):

            def build(feedback: str = feedback) -> str:
                sources = [f for part in plan.parts for f in part.files]
                text = self.brief(plan, self.record["summaries"])
                text += "\n## Files the implementation will touch\n" + self.files_block(sources)
                text += (
                    "\n\nWrite the tests from the plan. They must fail now because the "
                    "behaviour is missing, and pass once it is implemented. Write only test "
                    "files; do not implement anything."
                )
                if feedback:
                    text += f"\n\n## The engine rejected your tests\n{feedback}"
                return text

            message = self.prepared(f"red-{attempt}", build)
            step = f"red-{attempt}"
            self.agents(
                [
                    self.task(
                        step,
                        "red",
                        TEST_WRITER,
                        message,
                        allowed_writes=list(gates.TEST_PATTERNS),
                        write_reason="The test writer writes tests only.",
                    )
                ]
            )
            verdict = self.red_gate(attempt, plan, pytest_runner)
            if verdict["accepted"]:
                self.record["red"] = verdict
                tests = list(verdict["new_tests"])
                self.commit("tests", f"test: failing tests for: {self.run.task[:60]}", tests)
                ws = self.workspace()
                self.record["test_hashes"] = checkpoint(
                    "hash:red", functools.partial(ws.file_hashes, tests)
                )
                self.record["summaries"].append(
                    f"red: tests written and failing: {', '.join(tests)}"
                )
                self.clock.mark("red", "end")
                return tests
            self.record.setdefault("red_rejections", []).append(verdict["reason"])
            feedback = verdict["reason"] + "\n\nOutput:\n" + verdict["output"][-6000:]
        raise RunFailed(
            f"red gate: tests not accepted after {self.svc.config.engine.red_attempts} "
            f"attempts; last reason: {self.record['red_rejections'][-1]}"
        )

    def red_gate(self, attempt: int, plan: Plan, pytest_runner: bool) -> dict[str, Any]:
        def go() -> dict[str, Any]:
            ws = self.workspace()
            new_tests = [p for p in ws.uncommitted_files() if gates.is_test_path(p)]
            new_tests = [p for p in new_tests if (ws.root / p).exists()]
            errors = gates.syntax_errors(ws.root, new_tests)
            home = self.svc.artifacts.run_dir(self.run_id) / "home"
            box = self.toolbox()
            existing = None
            if new_tests and not errors and pytest_runner:
                existing = gates.run_tests(box, [], home / f"red-{attempt}-existing.xml", new_tests)
            new = (
                gates.run_tests(box, new_tests, home / f"red-{attempt}-new.xml")
                if new_tests and not errors
                else None
            )
            if new is None:
                verdict = gates.judge_red(
                    new_tests, errors, None, _empty_run(), set(), pytest_runner
                )
            else:
                verdict = gates.judge_red(
                    new_tests, errors, existing, new, plan.module_names(), pytest_runner
                )
            log = self.svc.artifacts.put_text(
                self.run_id,
                f"tests/red-{attempt}.log",
                verdict.reason + "\n\n" + verdict.output,
                "test-log",
            )
            return {
                "accepted": verdict.accepted,
                "reason": verdict.reason,
                "output": verdict.output[-8000:],
                "new_tests": new_tests,
                "log": log,
                "counts": new.counts if new is not None else {},
                "attempt": attempt,
            }

        result: dict[str, Any] = checkpoint(f"gate:red:{attempt}", go)
        return result

    def implementers(self, plan: Plan) -> list[tuple[str, Any]]:
        return [(self.svc.agents.pick_for_files(part.files), part) for part in plan.parts]

    def green(self, plan: Plan, tests: list[str]) -> None:
        self.phase("green")
        self.clock.mark("green", "start")
        feedback = ""
        red_log = self.svc.artifacts.get_text(self.run_id, self.record["red"]["log"])
        for iteration in range(1, self.svc.config.engine.green_iterations + 1):
            tasks = []
            for agent, part in self.implementers(plan):

                def build(part: Any = part, feedback: str = feedback) -> str:
                    text = self.brief(plan, self.record["summaries"])
                    text += f"\n## Your part: {part.name}\n{part.description}\n"
                    text += "\n## The tests to make pass (do not change them)\n"
                    text += self.files_block(tests)
                    text += "\n\n## Your files\n" + self.files_block(part.files)
                    if feedback:
                        text += f"\n\n## Test output after the last round\n{feedback}"
                    else:
                        text += f"\n\n## The failing test output\n{red_log[-4000:]}"
                    return text

                step = f"green-{iteration}-{part.name}"
                tasks.append(
                    self.task(
                        step,
                        "green",
                        agent,
                        self.prepared(step, build),
                        allowed_writes=list(part.files),
                        protected=tests,
                        write_reason=f"Part {part.name!r} owns these files.",
                    )
                )
            self.agents(tasks)
            outcome = self.green_gate(f"green-{iteration}", tests)
            if outcome["ok"]:
                self.record["green"] = {**outcome, "iterations": iteration}
                files = [f for part in plan.parts for f in part.files]
                self.commit("implementation", f"feat: {self.run.task[:72]}", files)
                self.record["summaries"].append(f"green: all tests pass after {iteration} round(s)")
                self.clock.mark("green", "end")
                return
            feedback = outcome["feedback"]
        raise RunFailed(
            f"green gate: tests still failing after "
            f"{self.svc.config.engine.green_iterations} implementation rounds"
        )

    def green_gate(self, name: str, protected: list[str]) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            ws = self.workspace()
            now = ws.file_hashes(protected)
            changed = [p for p, h in now.items() if h != self.record["test_hashes"].get(p)]
            if changed:
                # The committed tests are the contract: put them back and say so.
                git(ws.root, "checkout", "HEAD", "--", *changed)
            return {"tampered": changed}

        tamper = checkpoint(f"hash:{name}", check)
        result = self.test_run(name, [])
        log = self.svc.artifacts.get_text(self.run_id, result["log"])
        feedback = log[-6000:]
        if tamper["tampered"]:
            feedback = (
                f"The tests {', '.join(tamper['tampered'])} were modified and have been "
                "restored; change the implementation, not the tests.\n\n" + feedback
            )
            result["ok"] = False
        return {**result, "feedback": feedback, "tampered": tamper["tampered"]}

    def review(self, plan: Plan, tests: list[str]) -> None:
        self.phase("review")
        self.clock.mark("review", "start")
        ws_files = checkpoint(
            "changed:review",
            lambda: [p for p in self.workspace().changed_files() if not gates.is_test_path(p)],
        )
        py_files = [p for p in ws_files if p.endswith(".py")]
        bandit = checkpoint("bandit", lambda: run_bandit(self.toolbox(), py_files))
        self.record["bandit"] = bandit
        diff_ref = checkpoint(
            "diff:review",
            lambda: self.svc.artifacts.put_text(
                self.run_id, "diffs/review.diff", self.workspace().diff(), "diff"
            ),
        )
        diff = self.svc.artifacts.get_text(self.run_id, diff_ref)[:40_000]
        base = (
            self.brief(plan, self.record["summaries"]) + f"\n## The change\n```diff\n{diff}\n```\n"
        )
        roles = [
            (
                SECURITY,
                "security",
                None,
                "Review the change for security problems. Static analysis (bandit) found:\n"
                f"```json\n{json.dumps(bandit['findings'], indent=1)[:6000]}\n```\n"
                "Call finish with a verdict and findings (blocking=true only for real problems).",
            ),
            (
                REVIEWER,
                "code-review",
                None,
                "Review the change for correctness, clarity and tests. Call finish with a "
                "verdict and findings; mark blocking only what must be fixed before merge.",
            ),
            (
                DOCS,
                "docs",
                ["*.md", "docs/*"],
                "Document the change for users (README or docs/). Call finish when done.",
            ),
            (
                QA,
                "qa",
                ["tests/*"],
                "Add edge-case tests in a new file under tests/ (do not edit existing tests). "
                "They should pass if the implementation is right. Call finish when done.",
            ),
        ]
        tasks = [
            self.task(
                f"review-{role}",
                "review",
                agent,
                base + "\n" + instruction,
                allowed_writes=allowed if allowed is not None else [],
                protected=tests,
                write_reason="Reviewers do not edit code.",
            )
            for agent, role, allowed, instruction in roles
        ]
        if "write_file" not in self.svc.agents.get(QA).tools:
            # The roster gives the QA lead read-only tools (least privilege); its edge-case
            # brief then goes to the test writer, who may write tests.
            tasks[-1] = replace(
                tasks[-1], agent=TEST_WRITER, model=self.task("qa", "review", TEST_WRITER, "").model
            )
        outcomes = self.agents(tasks)
        self.record["review"] = {
            o.step_id: {
                "agent": o.agent,
                "status": o.status,
                "verdict": o.result.get("verdict"),
                "findings": o.result.get("findings") or [],
                "summary": o.summary[:500],
            }
            for o in outcomes
        }
        for outcome in outcomes:
            for finding in outcome.result.get("findings") or []:
                if isinstance(finding, dict) and finding.get("blocking"):
                    self.store_knowledge(
                        f"finding-{outcome.step_id}-{finding.get('line', 0)}",
                        f"Review finding ({outcome.agent}): {finding.get('finding', '')}",
                        "bug",
                        outcome.agent,
                    )
        # Docs and QA's tests are committed as they were written.
        changed = checkpoint("changed:after-review", lambda: self.workspace().uncommitted_files())
        docs = [p for p in changed if p.endswith(".md") or p.startswith("docs/")]
        qa_tests = [p for p in changed if gates.is_test_path(p) and p not in tests]
        self.commit("docs", f"docs: {self.run.task[:72]}", docs)
        self.commit("qa-tests", "test: edge cases from QA review", qa_tests)
        after = self.test_run("review", [])
        blocking = [
            f
            for o in outcomes
            for f in (o.result.get("findings") or [])
            if isinstance(f, dict) and f.get("blocking")
        ]
        if not after["ok"]:
            log = self.svc.artifacts.get_text(self.run_id, after["log"])
            blocking.append(
                {
                    "severity": "high",
                    "finding": "edge-case tests fail",
                    "blocking": True,
                    "fix": log[-3000:],
                }
            )
        self.clock.mark("review", "end")
        self.record["blocking"] = blocking
        if blocking:
            self.fix(plan, tests + qa_tests, blocking)

    def fix(self, plan: Plan, protected: list[str], blocking: list[dict[str, Any]]) -> None:
        self.phase("fix")
        self.clock.mark("fix", "start")
        rounds = self.svc.config.engine.fix_rounds
        if rounds == 0:
            raise RunFailed(f"review: {len(blocking)} blocking finding(s) and no fix rounds")
        for rnd in range(1, rounds + 1):
            findings = json.dumps(blocking, indent=1)[:8000]
            tasks = []
            for agent, part in self.implementers(plan):
                step = f"fix-{rnd}-{part.name}"

                def build(part: Any = part, findings: str = findings) -> str:
                    return (
                        self.brief(plan, self.record["summaries"])
                        + f"\n## Blocking review findings\n```json\n{findings}\n```\n"
                        + f"\n## Your files ({part.name})\n"
                        + self.files_block(part.files)
                        + "\n\nFix the findings that concern your files, then call finish."
                    )

                tasks.append(
                    self.task(
                        step,
                        "fix",
                        agent,
                        self.prepared(step, build),
                        allowed_writes=list(part.files),
                        protected=protected,
                        write_reason=f"Part {part.name!r} owns these files.",
                    )
                )
            self.agents(tasks)
            self.record["test_hashes"].update(
                checkpoint(f"hash:qa:{rnd}", lambda: self.workspace().file_hashes(protected))
            )
            result = self.green_gate(f"fix-{rnd}", protected)
            if result["ok"]:
                files = [f for part in plan.parts for f in part.files]
                self.commit("fixes", "fix: address blocking review findings", files)
                self.record["fixes"] = {"rounds": rnd, "findings": len(blocking), "tests": "pass"}
                self.clock.mark("fix", "end")
                return
        raise RunFailed(f"fix round: tests fail after {rounds} round(s) of fixes")

    def finish(self, status: str, reason: str | None) -> dict[str, Any]:
        self.phase("finish")

        def coverage() -> dict[str, Any]:
            if status != "succeeded":
                return {"status": "not measured (run did not reach green)"}
            return changed_line_coverage(self.toolbox(), self.workspace())

        self.record["coverage"] = checkpoint("coverage", coverage)

        def write() -> str:
            report = build_report(
                self.svc, self.run_id, status, reason, self.record, self.clock.phases
            )
            return report

        report_path = checkpoint("report", write)
        self.svc.runs.update(
            self.run_id,
            status=status,
            failure_reason=reason,
            report_path=report_path,
            finished_at=self.svc.runs.clock(),
            phase="done",
        )
        return {"status": status, "reason": reason, "report": report_path}

    def execute(self) -> dict[str, Any]:
        self.prepare()
        try:
            plan = self.plan()
            tests = self.red(plan)
            self.green(plan, tests)
            self.review(plan, tests)
        except RunFailed as exc:
            return self.finish("failed", str(exc))
        return self.finish("succeeded", None)


def _empty_run() -> gates.TestRun:
    from orchestra.tools.sandbox import CommandResult

    return gates.TestRun(CommandResult((), 1, "", "", 0.0, False, False))


@DBOS.workflow(name="orchestra.test_first")
def test_first_workflow(run_id: str) -> dict[str, Any]:
    """The durable test-first pipeline for one run."""
    return TestFirstPipeline(services(), run_id).execute()
