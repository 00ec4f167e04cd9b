"""The policy engine with real cedarpy: decisions, the unit tree, deny-by-default,
refusals audited in the real audit log, reloads that are all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.accounting import AuditLog
from orchestra.config import parse_config
from orchestra.config.org import OrganisationSection
from orchestra.policy import (
    PolicyDenied,
    PolicyEngine,
    PolicyInvalid,
    PolicySource,
    Principal,
    Resource,
)
from orchestra.store import Database

ORG = OrganisationSection.model_validate(
    {
        "name": "acme",
        "units": [
            {"name": "eng", "kind": "division"},
            {"name": "payments", "kind": "tribe", "parent": "eng", "regions": ["eu", "us"]},
            {"name": "squad-a", "kind": "squad", "parent": "payments", "regions": ["eu"]},
            {"name": "labs", "kind": "squad"},
        ],
        "developers": [
            {"name": "ann", "unit": "squad-a"},
            {"name": "vic", "unit": "squad-a", "role": "viewer"},
            {"name": "lea", "unit": "payments", "role": "lead"},
            {"name": "adm", "role": "admin"},
            {"name": "lou", "unit": "labs"},
        ],
    }
)
PCI = Resource("Repository", "core", {"tags": ["pci"]})
MODEL = Resource("Model", "m", {"provider": "p", "region": "eu", "tier": "opus"})
CALL = {"requested": "m", "tier": "opus", "fallback": False}


def _engine(folder: Path | None = None, default: str = "permit", **kw: object) -> PolicyEngine:
    return PolicyEngine(PolicySource(folder=folder, default=default, org=ORG), **kw)  # type: ignore[arg-type]


def _who(engine: PolicyEngine, name: str) -> Principal:
    principal = engine.principal_for_developer(name)
    assert principal is not None
    return principal


def test_a_policy_on_a_division_applies_to_its_squads(tmp_path: Path) -> None:
    (tmp_path / "runs.cedar").write_text(
        '@id("eng-no-pci")\n'
        'forbid (principal in Unit::"eng", action == Action::"start_run", resource)\n'
        'when { resource.tags.contains("pci") };\n'
    )
    engine = _engine(tmp_path)
    context = {"budget_cents": 100, "pipeline": "test-first"}
    refused = engine.decide(_who(engine, "ann"), "start_run", PCI, context)  # squad-a < eng
    assert not refused.allowed and refused.policy_ids == ("eng-no-pci",)
    assert engine.decide(_who(engine, "lou"), "start_run", PCI, context).allowed  # labs
    # A unit given by its path works the same when the tree does not know it.
    stranger = Principal("developer", "x", frozenset({"developer"}), unit="eng/newsquad")
    assert not engine.decide(stranger, "start_run", PCI, context).allowed


def test_regions_are_intersected_down_the_tree() -> None:
    engine = _engine()
    assert _who(engine, "ann").regions == ("eu",)
    assert _who(engine, "lea").regions == ("eu", "us")
    assert _who(engine, "lou").regions == ()  # no restriction anywhere above
    us = Resource("Model", "m", {"provider": "p", "region": "us", "tier": ""})
    assert engine.decide(_who(engine, "lea"), "call_model", us, CALL).allowed
    refused = engine.decide(_who(engine, "ann"), "call_model", us, CALL)
    assert refused.policy_ids == ("residency",)
    unknown = Resource("Model", "m", {"provider": "p", "region": "", "tier": ""})
    assert not engine.decide(_who(engine, "ann"), "call_model", unknown, CALL).allowed


def test_deny_by_default_is_one_setting() -> None:
    permissive, strict = _engine(), _engine(default="deny")
    ann = _who(permissive, "ann")
    budget = Resource("Budget", "payments-monthly", parents=(("Unit", "payments"),))
    assert permissive.decide(ann, "change_budget", budget).allowed
    refused = strict.decide(ann, "change_budget", budget)
    assert not refused.allowed and refused.policy_ids == ()
    assert "default is deny" in refused.reasons[0]
    # The shipped role policies still let each role do its work.
    assert strict.decide(ann, "call_model", MODEL, CALL).allowed
    assert strict.decide(_who(strict, "lea"), "change_budget", budget).allowed  # lead of payments
    squad_budget = Resource("Budget", "b", parents=(("Unit", "squad-a"),))
    assert strict.decide(_who(strict, "lea"), "change_budget", squad_budget).allowed
    labs = Resource("Budget", "l", parents=(("Unit", "labs"),))
    assert not strict.decide(_who(strict, "lea"), "change_budget", labs).allowed
    admin = _who(strict, "adm")
    assert strict.decide(admin, "manage_policies", Resource("Organisation", "acme")).allowed


def test_require_audits_the_refusal_with_its_policy_id(database: Database, tmp_path: Path) -> None:
    audit = AuditLog(database, home=tmp_path)
    engine = _engine(audit=audit)
    vic = _who(engine, "vic")
    with pytest.raises(PolicyDenied) as caught:
        engine.require(vic, "call_model", MODEL, CALL)
    assert caught.value.status == 403 and "viewer-cannot-spend" in caught.value.message
    assert caught.value.hint
    (entry,) = audit.list(action="policy.deny")
    assert entry.actor == "developer:vic"
    assert entry.details["policy_ids"] == ["viewer-cannot-spend"]
    assert entry.target == 'call_model Model::"m"'
    # Permits are not audited unless asked.
    engine.require(_who(engine, "ann"), "call_model", MODEL, CALL)
    assert audit.list(action="policy.permit") == []
    engine.audit_permits = True
    engine.require(_who(engine, "ann"), "call_model", MODEL, CALL)
    (permit,) = audit.list(action="policy.permit")
    assert permit.details["policy_ids"] == ["members-work", "permissive"]
    assert audit.verify().ok


def test_unknown_actions_and_evaluation_errors_refuse(tmp_path: Path) -> None:
    (tmp_path / "ctx.cedar").write_text(
        '@id("no-big-runs")\n'
        'forbid (principal, action == Action::"start_run", resource)\n'
        "when { context.budget_cents > 5000 };\n"
    )
    engine = _engine(tmp_path)
    ann = _who(engine, "ann")
    assert not engine.decide(ann, "launch_missiles", PCI).allowed
    # A context without budget_cents: the forbid cannot be evaluated, so it refuses.
    missing = engine.decide(ann, "start_run", PCI, {"pipeline": "x"})
    assert not missing.allowed and "no-big-runs" in " ".join(missing.reasons)
    assert not engine.decide(ann, "start_run", PCI, {"budget_cents": 9000, "pipeline": "x"}).allowed
    assert engine.decide(ann, "start_run", PCI, {"budget_cents": 10, "pipeline": "x"}).allowed


def test_a_bad_reload_keeps_the_policies_in_force(database: Database, tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "a.cedar").write_text(
        '@id("no-labs")\nforbid (principal in Unit::"labs", action, resource);\n'
    )
    audit = AuditLog(database, home=tmp_path)
    engine = _engine(folder, audit=audit)
    before = engine.version
    lou = _who(engine, "lou")
    assert not engine.decide(lou, "call_model", MODEL, CALL).allowed
    (folder / "a.cedar").write_text("forbid (principal, action resource);\n")
    with pytest.raises(PolicyInvalid):
        engine.reload(actor="developer:adm")
    assert engine.version == before
    assert not engine.decide(lou, "call_model", MODEL, CALL).allowed  # old set still decides
    (failed,) = audit.list(action="policy.reload_failed")
    assert failed.actor == "developer:adm" and failed.details["in_force"] == before
    assert "a.cedar:1:1" in failed.details["problems"][0]
    (folder / "a.cedar").write_text("// nothing forbidden any more\n")
    assert engine.reload() != before
    assert engine.decide(lou, "call_model", MODEL, CALL).allowed  # the cache went with the set
    assert [e.action for e in audit.list()][:2] == ["policy.reload", "policy.reload_failed"]


def test_config_names_the_folder_relative_to_orchestra_yaml(tmp_path: Path) -> None:
    from orchestra.config import load_config

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "x.cedar").write_text(
        '@id("x")\nforbid (principal, action, resource);\n'
    )
    (tmp_path / "orchestra.yaml").write_text("policies: {folder: policies, default: deny}\n")
    config = load_config(tmp_path / "orchestra.yaml")
    engine = PolicyEngine.from_config(config)
    assert "x" in engine.bundle.ids and "permissive" not in engine.bundle.ids
    assert parse_config("", environ={}).policies.default == "permit"
