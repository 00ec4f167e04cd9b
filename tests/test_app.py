"""The composition root: services built for a state folder keep their state there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestra.app import Orchestra
from orchestra.config import OrchestraConfig


def test_the_accountings_state_lives_in_the_state_folder_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key pepper, audit checkpoint and ledger journal go to ``home``, never to the
    working folder's ``.orchestra`` (a demo or a test run from /tmp left state there)."""
    monkeypatch.delenv("ORCHESTRA_HOME")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    home = tmp_path / "state"
    services = Orchestra(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", home=home, config_given=OrchestraConfig()
    )
    with services:
        services.migrate()
        accounting = services.accounting()
        try:
            accounting.keys.create("alice", "payments")
            journal = accounting.ledger.journal_dir
        finally:
            accounting.close()
    assert (home / "key-pepper").is_file()
    assert any((home / "audit-checkpoints").iterdir())
    assert journal.parent == home / "ledger-journal"
    assert not (elsewhere / ".orchestra").exists()


def test_the_policies_it_builds_audit_refusals_in_its_database(tmp_path: Path) -> None:
    from orchestra.config import parse_config
    from orchestra.policy import PolicyDenied, Resource

    config = parse_config("organisation:\n  developers: [{name: vic, role: viewer}]\n", environ={})
    services = Orchestra(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", home=tmp_path, config_given=config
    )
    with services:
        services.migrate()
        policies = services.policies()
        vic = policies.principal_for_developer("vic")
        assert vic is not None
        with pytest.raises(PolicyDenied):
            policies.require(
                vic,
                "start_run",
                Resource("Repository", "r", {"tags": []}),
                {"budget_cents": 1, "pipeline": "test-first"},
            )
        accounting = services.accounting()
        try:
            (entry,) = accounting.audit.list(action="policy.deny")
        finally:
            accounting.close()
    assert entry.actor == "developer:vic" and entry.details["policy_ids"] == ["viewer-cannot-spend"]


def test_engines_on_postgresql_take_organisation_wide_slots_and_on_sqlite_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage's cap, agents_per_developer and topology, for the run's developer: shared by
    every worker on a PostgreSQL system database, this process's own on SQLite."""
    from orchestra.config.org import DeveloperConfig, OrganisationSection

    monkeypatch.delenv("ORCHESTRA_DEVELOPER", raising=False)
    people = [DeveloperConfig(name=f"dev{i}") for i in range(12)]  # 12: the medium stage
    config = OrchestraConfig(organisation=OrganisationSection(developers=people))
    services = Orchestra(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", home=tmp_path, config_given=config
    )
    with services:
        services.migrate()
        client: Any = object()  # stored, never called: no runtime is launched here
        local = services.engine(client)
        shared = services.engine(client, system_database_url="postgresql://db.example/dbos")
        monkeypatch.setenv("ORCHESTRA_DEVELOPER", "dev3")
        dev3 = services.engine(client, system_database_url="postgresql://db.example/dbos")
    assert local.services.org_slots is not None and not local.services.org_slots.shared
    slots = shared.services.org_slots
    assert slots is not None and slots.shared
    assert (slots.capacity, slots.per_developer, slots.topology) == (75, 2, "hierarchical")
    # Twelve developers and none chosen: the process is its own partition.
    assert slots.developer == shared.executor_id
    assert dev3.services.org_slots is not None and dev3.services.org_slots.developer == "dev3"
