"""``orchestra slots`` shows the topology and the agent steps waiting and granted per unit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.config.scheduling import SchedulingSettings
from orchestra.engine.slot_table import SlotPolicy, SlotTable
from orchestra.scheduling import Placement
from orchestra.store import open_database

runner = CliRunner()


def test_slots_lists_waiting_and_granted_per_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ORCHESTRA_DATABASE_URL", raising=False)
    database = open_database(f"sqlite:///{tmp_path / 'home' / 'orchestra.db'}")
    policy = SlotPolicy(1, 1, "single_node", SchedulingSettings(), {})
    table = SlotTable(database, policy, "w1", False, lambda ids: {})
    who = Placement("developer", "core", "platform", "eu")
    table.request("run-1:a", who)
    table.request("run-1:b", who)
    table.dispatch()
    database.dispose()
    result = runner.invoke(app, ["slots", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["topology"], shown["allocation"], shown["shared"]) == (
        "single_node",
        "static",
        False,
    )
    units = {(u["level"], u["unit"]): (u["waiting"], u["granted"]) for u in shown["units"]}
    assert units[("developer", "developer")] == (1, 1)
    assert units[("squad", "core")] == (1, 1) and units[("region", "eu")] == (1, 1)
    text = runner.invoke(app, ["slots"])
    assert text.exit_code == 0 and "topology single_node" in text.output
