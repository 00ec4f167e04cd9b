"""Routing by agent, end to end: a complete test-first run through the real gateway, whose
configuration sends the coder's calls to a local host and leaves the architect's on the
cloud."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from orchestra.app import Orchestra
from orchestra.config import parse_config
from orchestra.demo import scripted_config_yaml
from orchestra.engine.agents import RosterAgents
from orchestra.testing import FakeUpstream, RecordedRequest
from orchestra.testing.scripted import SAMPLE_TASK, ScriptedModel, create_sample_repository

pytestmark = pytest.mark.slow

_AGENT = re.compile(r"^Agent: (\S+)$", re.MULTILINE)


def agents_of(requests: list[RecordedRequest]) -> Counter[str]:
    """The agent of each model call an upstream received (named in the task's header)."""
    found: Counter[str] = Counter()
    for request in requests:
        messages = (request.json or {}).get("messages") or [{}]
        content = messages[0].get("content", "")
        text = content if isinstance(content, str) else str(content)
        match = _AGENT.search(text)
        found[match.group(1) if match else "?"] += 1
    return found


def test_the_coders_calls_reach_the_local_host_and_the_architects_the_cloud(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with FakeUpstream.start() as cloud, FakeUpstream.start() as local:
        cloud.responder = ScriptedModel("happy")
        local.responder = ScriptedModel("happy")
        data = yaml.safe_load(scripted_config_yaml(cloud.base_url))
        data["providers"]["local"] = {"kind": "anthropic", "base_url": local.base_url}
        data["models"]["local-coder"] = {"provider": "local", "price": {"input": 0, "output": 0}}
        data["routing"] = {
            "routes": {"local": {"model": "local-coder"}},
            "agents": {"python-developer": "local"},
        }
        config = parse_config(yaml.safe_dump(data), source="<routing test>")
        home = tmp_path / "home"
        services = Orchestra(
            database_url=f"sqlite:///{home / 'orchestra.db'}", home=home, config_given=config
        )
        try:
            with services.engine_with_local_gateway(agents=pipeline_agents) as (runtime, gw):
                run_id = runtime.start_run(SAMPLE_TASK, repo)
                row = runtime.wait(run_id, timeout_s=300)
                ledger = gw.accounting.ledger.entries(run_id=run_id)
        finally:
            services.close()
        on_local, on_cloud = agents_of(local.requests), agents_of(cloud.requests)
    assert row.status == "succeeded", row.failure_reason
    assert set(on_local) == {"python-developer"}
    assert on_cloud["chief-architect"] > 0 and "python-developer" not in on_cloud

    # The ledger says which model served each agent, and which rule sent it there.
    served = {(e.attribution.agent, e.served_model, e.fallback_path[0]) for e in ledger}
    assert ("python-developer", "local-coder", "rule agent:python-developer") in served
    assert all(
        e.fallback_path[0] == "rule agent:python-developer"
        for e in ledger
        if e.attribution.agent == "python-developer"
    )
    architect = {e.served_model for e in ledger if e.attribution.agent == "chief-architect"}
    assert architect == {"scripted-opus"}
    assert sum(1 for e in ledger if e.served_model == "local-coder") == sum(on_local.values())
