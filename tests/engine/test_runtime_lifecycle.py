"""Engine runtime lifecycle: a failed launch leaves nothing running and can be retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.app import Orchestra
from orchestra.config.loader import parse_config
from orchestra.engine import EngineRuntime, RosterAgents, dbos_threads


def _runtime(
    services: Orchestra, agents: RosterAgents, system_url: str | None = None
) -> EngineRuntime:
    return services.engine(
        object(),  # type: ignore[arg-type]  # no run is started: no model call
        agents=agents,
        system_database_url=system_url,
    )


def test_a_failed_launch_stops_dbos_and_unbinds(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    with Orchestra(
        database_url=f"sqlite:///{tmp_path / 'orchestra.db'}",
        home=tmp_path,
        config_given=parse_config("{}", source="<test>"),
    ) as services:
        unreachable = f"sqlite:///{tmp_path / 'missing-folder' / 'dbos.sqlite'}"
        runtime = _runtime(services, pipeline_agents, unreachable)
        with pytest.raises(Exception):  # noqa: B017 - whatever DBOS raises for the folder
            runtime.launch()
        assert dbos_threads() == []
        # The failed launch left no binding behind: another runtime launches.
        with _runtime(services, pipeline_agents):
            assert dbos_threads()
