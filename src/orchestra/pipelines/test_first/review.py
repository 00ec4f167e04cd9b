"""Review in parallel (security, code, docs, QA), then a bounded fix round."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from orchestra.engine import checkpoint
from orchestra.pipelines import gates
from orchestra.pipelines.plan import Plan, PlanPart
from orchestra.pipelines.test_first.green import green_gate, implementers
from orchestra.pipelines.test_first.report import run_bandit
from orchestra.pipelines.test_first.state import FixRecord, ReviewVerdict
from orchestra.pipelines.test_first.steps import (
    DOCS,
    QA,
    REVIEWER,
    SECURITY,
    TEST_WRITER,
    RunFailed,
    TestFirstRun,
)
from orchestra.pipelines.text import commit_subject


def review_phase(run: TestFirstRun) -> None:
    """The four reviewers at once; docs and QA tests committed; blocking findings fixed."""
    state = run.state
    plan, tests = state.require_plan(), state.tests
    run.phase("review")
    run.mark("review", "start")
    ws_files = checkpoint(
        "changed:review",
        lambda: [p for p in run.workspace().changed_files() if not gates.is_test_path(p)],
    )
    py_files = [p for p in ws_files if p.endswith(".py")]
    bandit = checkpoint("bandit", lambda: run_bandit(run.toolbox(), py_files))
    state.bandit = bandit
    diff_ref = checkpoint(
        "diff:review",
        lambda: run.svc.artifacts.put_text(
            run.run_id, "diffs/review.diff", run.workspace().diff(), "diff"
        ),
    )
    diff = run.svc.artifacts.get_text(run.run_id, diff_ref)[:40_000]
    base = run.brief(plan, state.summaries) + f"\n## The change\n```diff\n{diff}\n```\n"
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
    # Skips were checked against the policies when the run started (engine.run_policy).
    skipped = set(run.svc.config.engine.skip_reviews)
    roles = [r for r in roles if r[1] not in skipped]
    tasks = [
        run.task(
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
    qa = next((i for i, r in enumerate(roles) if r[1] == "qa"), None)
    if qa is not None and "write_file" not in run.svc.agents_for(run.run_id).get(QA).tools:
        # The roster gives the QA lead read-only tools (least privilege); its edge-case
        # brief then goes to the test writer, who may write tests.
        tasks[qa] = replace(
            tasks[qa], agent=TEST_WRITER, model=run.task("qa", "review", TEST_WRITER, "").model
        )
    outcomes = run.agents(tasks)
    state.review = {
        o.step_id: ReviewVerdict(
            agent=o.agent,
            status=o.status,
            verdict=o.result.get("verdict"),
            findings=o.result.get("findings") or [],
            summary=o.summary[:500],
        )
        for o in outcomes
    }
    for outcome in outcomes:
        for finding in outcome.result.get("findings") or []:
            if isinstance(finding, dict) and finding.get("blocking"):
                run.store_knowledge(
                    f"finding-{outcome.step_id}-{finding.get('line', 0)}",
                    f"Review finding ({outcome.agent}): {finding.get('finding', '')}",
                    "bug",
                    outcome.agent,
                )
    # Docs and QA's tests are committed as they were written.
    changed = checkpoint("changed:after-review", lambda: run.workspace().uncommitted_files())
    docs = [p for p in changed if p.endswith(".md") or p.startswith("docs/")]
    qa_tests = [p for p in changed if gates.is_test_path(p) and p not in tests]
    run.commit("docs", commit_subject("docs: ", run.row.task), docs)
    run.commit("qa-tests", "test: edge cases from QA review", qa_tests)
    after = run.test_run("review")
    blocking = [
        f
        for o in outcomes
        for f in (o.result.get("findings") or [])
        if isinstance(f, dict) and f.get("blocking")
    ]
    if not after.ok:
        log = run.svc.artifacts.get_text(run.run_id, after.log)
        blocking.append(
            {
                "severity": "high",
                "finding": "edge-case tests fail",
                "blocking": True,
                "fix": log[-3000:],
            }
        )
    run.mark("review", "end")
    state.blocking = blocking
    if blocking:
        fix_round(run, plan, tests + qa_tests, blocking)


def fix_round(
    run: TestFirstRun, plan: Plan, protected: list[str], blocking: list[dict[str, Any]]
) -> None:
    """Implementers fix the blocking findings, within ``engine.fix_rounds`` rounds."""
    run.phase("fix")
    run.mark("fix", "start")
    rounds = run.svc.config.engine.fix_rounds
    if rounds == 0:
        raise RunFailed(f"review: {len(blocking)} blocking finding(s) and no fix rounds")
    for rnd in range(1, rounds + 1):
        findings = json.dumps(blocking, indent=1)[:8000]
        tasks = []
        for agent, part in implementers(run, plan):
            step = f"fix-{rnd}-{part.name}"

            def build(part: PlanPart = part, findings: str = findings) -> str:
                return (
                    run.brief(plan, run.state.summaries)
                    + f"\n## Blocking review findings\n```json\n{findings}\n```\n"
                    + f"\n## Your files ({part.name})\n"
                    + run.files_block(part.files)
                    + "\n\nFix the findings that concern your files, then call finish."
                )

            tasks.append(run.part_task(step, "fix", agent, part, build, protected))
        run.agents(tasks)
        run.state.test_hashes.update(
            checkpoint(f"hash:qa:{rnd}", lambda: run.workspace().file_hashes(protected))
        )
        result = green_gate(run, f"fix-{rnd}", protected)
        if result.ok:
            files = [f for part in plan.parts for f in part.files]
            run.commit("fixes", "fix: address blocking review findings", files)
            run.state.fixes = FixRecord(rounds=rnd, findings=len(blocking), tests="pass")
            run.mark("fix", "end")
            return
    raise RunFailed(f"fix round: tests fail after {rounds} round(s) of fixes")
