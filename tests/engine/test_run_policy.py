"""The policies on runs, with real cedarpy and the real audit log: the largest run budget
per role, who may run on which repository (by its tags), refusals audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.accounting import AuditLog
from orchestra.config import parse_config
from orchestra.engine.run_policy import require_run_start
from orchestra.policy import PolicyDenied, PolicyEngine
from orchestra.store import Database

POLICIES = """
@id("developer-run-cap")
forbid (principal in Role::"developer", action == Action::"start_run", resource)
when { context.budget_cents > 500 };

@id("pci-payments-only")
forbid (principal, action == Action::"start_run", resource)
when { resource.tags.contains("pci") }
unless { principal in Unit::"payments" };
"""


def test_run_budgets_per_role_and_repositories_by_tag(database: Database, tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "runs.cedar").write_text(POLICIES)
    pci_repo = tmp_path / "core"
    config = parse_config(
        f"""organisation:
  units: [{{name: payments, kind: squad}}, {{name: web, kind: squad}}]
  developers:
    - {{name: ann, unit: payments}}
    - {{name: wes, unit: web}}
    - {{name: lea, unit: payments, role: lead}}
policies: {{folder: {tmp_path / "policies"}}}
repositories:
  overrides:
    {pci_repo}: {{tags: [pci]}}
""",
        environ={},
    )
    audit = AuditLog(database, home=tmp_path)
    engine = PolicyEngine.from_config(config, audit=audit)
    ann, wes, lea = (engine.principal_for_developer(n) for n in ("ann", "wes", "lea"))
    assert ann is not None and wes is not None and lea is not None
    other = tmp_path / "site"

    (permit,) = require_run_start(engine, config, ann, pci_repo, 5.0, "test-first")
    assert permit.allowed
    with pytest.raises(PolicyDenied, match="developer-run-cap"):
        require_run_start(engine, config, ann, pci_repo, 5.01, "test-first")
    with pytest.raises(PolicyDenied, match="developer-run-cap"):
        require_run_start(engine, config, ann, other, None, "test-first")  # no cap: the largest
    assert require_run_start(engine, config, lea, pci_repo, 50.0, "test-first")[0].allowed
    with pytest.raises(PolicyDenied, match="pci-payments-only"):
        require_run_start(engine, config, wes, pci_repo, 1.0, "test-first")
    assert require_run_start(engine, config, wes, other, 1.0, "test-first")[0].allowed

    refusals = audit.list(action="policy.deny")
    assert [e.details["policy_ids"] for e in refusals] == [
        ["pci-payments-only"],
        ["developer-run-cap"],
        ["developer-run-cap"],
    ]
    assert refusals[0].actor == "developer:wes"
    assert refusals[0].target == f'start_run Repository::"{pci_repo}"'


def test_a_review_skip_is_refused_on_the_repositories_a_policy_names(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "pci.cedar").write_text(PCI_REVIEW)
    pci_repo, site = tmp_path / "core", tmp_path / "site"
    config = parse_config(
        f"""policies: {{folder: {tmp_path / "policies"}}}
engine: {{skip_reviews: [security, docs]}}
repositories:
  overrides:
    {pci_repo}: {{tags: [pci]}}
""",
        environ={},
    )
    engine = PolicyEngine.from_config(config)
    assert len(require_run_start(engine, config, None, site, 1.0, "test-first")) == 2
    with pytest.raises(PolicyDenied, match="pci-security-review") as caught:
        require_run_start(engine, config, None, pci_repo, 1.0, "test-first")
    assert caught.value.action == "skip_phase" and "service" not in caught.value.message
    docs_only = config.model_copy(
        update={"engine": config.engine.model_copy(update={"skip_reviews": ["docs"]})}
    )
    assert require_run_start(engine, docs_only, None, pci_repo, 1.0, "test-first")


PCI_REVIEW = """
@id("pci-security-review")
forbid (principal, action == Action::"skip_phase", resource)
when { resource.tags.contains("pci") && context.phase == "security" };
"""
