"""Engine runtime lifecycle: a failed launch leaves nothing running and can be retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.config.loader import parse_config
from orchestra.engine import EngineRuntime, dbos_threads
from orchestra.engine.agents import RosterAgents
from orchestra.engine.factory import build_runtime
from orchestra.pipelines import builtin_pipelines
from orchestra.store import Database, open_database


def _runtime(
    tmp_path: Path, database: Database, agents: RosterAgents, system_url: str | None = None
) -> EngineRuntime:
    return build_runtime(
        config=parse_config("{}", source="<test>"),
        database=database,
        database_url=f"sqlite:///{tmp_path / 'orchestra.db'}",
        home=tmp_path,
        client=object(),  # type: ignore[arg-type]  # no run is started: no model call
        pipelines=builtin_pipelines(),
        agents=agents,
        system_database_url=system_url,
    )


def test_a_failed_launch_stops_dbos_and_unbinds(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'orchestra.db'}")
    try:
        unreachable = f"sqlite:///{tmp_path / 'missing-folder' / 'dbos.sqlite'}"
        runtime = _runtime(tmp_path, database, pipeline_agents, unreachable)
        with pytest.raises(Exception):  # noqa: B017 - whatever DBOS raises for the folder
            runtime.launch()
        assert dbos_threads() == []
        # The failed launch left no binding behind: another runtime launches.
        with _runtime(tmp_path, database, pipeline_agents):
            assert dbos_threads()
    finally:
        database.dispose()
