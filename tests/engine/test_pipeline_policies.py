"""A review skipped by configuration, under the policies: through a complete scripted run
(slow: DBOS, git and the test-first pipeline end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.policy import PolicyDenied
from orchestra.testing.scripted import SAMPLE_TASK, create_sample_repository

pytestmark = pytest.mark.slow

PCI_REVIEW = """
@id("pci-security-review")
forbid (principal, action == Action::"skip_phase", resource)
when { resource.tags.contains("pci") && context.phase == "security" };
"""


def test_the_security_review_is_skipped_only_where_no_policy_forbids_it(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "pci.cedar").write_text(PCI_REVIEW)
    repo = create_sample_repository(tmp_path / "repo")
    pci = create_sample_repository(tmp_path / "pci")
    extra = (
        f"policies: {{folder: {tmp_path / 'policies'}}}\n"
        "engine: {skip_reviews: [security]}\n"
        f"repositories: {{overrides: {{{pci}: {{tags: [pci]}}}}}}\n"
    )
    with scripted_stack(tmp_path / "home", agents=pipeline_agents, extra_yaml=extra) as stack:
        with pytest.raises(PolicyDenied, match="pci-security-review"):
            stack.runtime.start_run(SAMPLE_TASK, pci)
        assert stack.runtime.services.runs.list_runs() == []  # refused before anything was recorded
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        row = stack.runtime.wait(run_id, timeout_s=300)
        steps = stack.runtime.services.runs.steps(run_id)
        audit = stack.services.accounting()
        try:
            refusals = audit.audit.list(action="policy.deny")
        finally:
            audit.close()
    assert row.status == "succeeded", row.failure_reason
    review = sorted(s.step for s in steps if s.phase == "review")
    assert review == ["review-code-review", "review-docs", "review-qa"]
    (refusal,) = refusals
    assert refusal.details["policy_ids"] == ["pci-security-review"]
    assert refusal.target == f'skip_phase Repository::"{pci}"'
