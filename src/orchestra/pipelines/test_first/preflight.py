"""Preflight: before the first model call, the repository's baseline in the run's worktree.

The test command must start and the baseline must pass (pre-existing failures are
recorded only when the repository allows them); otherwise the run ends here, with the
first real error and the fix, having spent nothing. The base's test ids are kept (as an
artefact) for the red gate, which uses them to tell new tests from existing ones.
"""

from __future__ import annotations

from typing import Any

from orchestra.engine import checkpoint
from orchestra.pipelines.test_first.state import BaselineRecord
from orchestra.pipelines.test_first.steps import RunFailed, TestFirstRun
from orchestra.repository import PreflightFailed, RepositoryError, preflight


def preflight_phase(run: TestFirstRun) -> None:
    """Check the environment and the baseline (a step); ``run.state.baseline``."""
    run.phase("preflight")
    run.mark("preflight", "start")

    def go() -> dict[str, Any]:
        home = run.svc.artifacts.run_dir(run.run_id) / "home"
        try:
            env = run.environment()
            baseline = preflight(
                env,
                run.workspace().root,
                home=home,
                limits=run.svc.limits(),
                report_dir=home / "reports",
                cache_dir=run.svc.home / "cache" / "baselines",
            )
        except (PreflightFailed, RepositoryError) as exc:
            run.show_tests("baseline", f"preflight failed: {exc.message[:200]}", {})
            return {"ok": False, "message": exc.message, "hint": exc.hint or ""}
        cached = " (cached for this commit)" if baseline.cached else ""
        run.show_tests("baseline", f"baseline passes{cached}", dict(baseline.counts))
        ids = run.svc.artifacts.put_json(
            run.run_id, "tests/baseline-ids.json", sorted(baseline.test_ids), "test-ids"
        )
        return {
            "ok": True,
            "commit": baseline.commit,
            "environment": env.describe(),
            "ids": ids,
            "tests": len(baseline.test_ids),
            "preexisting": sorted(baseline.preexisting_failures),
            "counts": baseline.counts,
            "cached": baseline.cached,
        }

    out = checkpoint("preflight", go)
    if not out["ok"]:
        hint = f" (fix: {out['hint']})" if out["hint"] else ""
        raise RunFailed(f"preflight: {out['message']}{hint}")
    run.state.baseline = BaselineRecord.from_step(out)
    run.state.summaries.append(
        f"preflight: baseline passes ({out['tests']} tests) with {out['environment']}"
    )
    run.mark("preflight", "end")


def baseline_ids(run: TestFirstRun) -> frozenset[str] | None:
    """The base's test ids recorded by the preflight (``None`` before it ran)."""
    if run.state.baseline is None:
        return None
    return frozenset(run.svc.artifacts.get_json(run.run_id, run.state.baseline.ids))
