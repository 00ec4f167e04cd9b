"""Engine runtime lifecycle: a failed launch leaves nothing running and can be retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.config.loader import parse_config
from orchestra.engine.agents import RosterAgents
from orchestra.engine.factory import build_runtime
from orchestra.engine.runtime import dbos_threads
from orchestra.store import open_database


def test_a_failed_launch_stops_dbos_and_unbinds(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    url = f"sqlite:///{tmp_path / 'orchestra.db'}"
    database = open_database(url)
    try:
        unreachable = f"sqlite:///{tmp_path / 'missing-folder' / 'dbos.sqlite'}"
        runtime = build_runtime(
            config=parse_config("{}", source="<test>"),
            database=database,
            database_url=url,
            home=tmp_path,
            client=object(),  # type: ignore[arg-type]
            agents=pipeline_agents,
            system_database_url=unreachable,
        )
        with pytest.raises(Exception):  # noqa: B017 - whatever DBOS raises for the folder
            runtime.launch()
        assert dbos_threads() == []
        ok = build_runtime(
            config=parse_config("{}", source="<test>"),
            database=database,
            database_url=url,
            home=tmp_path,
            client=object(),  # type: ignore[arg-type]
            agents=pipeline_agents,
        )
        with ok:  # the failed launch left no binding behind
            assert dbos_threads()
    finally:
        database.dispose()
