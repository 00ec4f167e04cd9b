"""Assembling an :class:`EngineRuntime` from configuration (for the CLI, demo and tests)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestra.config.schema import OrchestraConfig
from orchestra.engine.agents import AgentSource, RosterAgents
from orchestra.engine.artifacts import ArtifactStore
from orchestra.engine.gateway_link import LocalGateway, local_gateway
from orchestra.engine.model import HttpModelClient, ModelClient
from orchestra.engine.pipeline import PipelineRegistry
from orchestra.engine.runs import RunStore
from orchestra.engine.runtime import EngineRuntime, default_system_database_url
from orchestra.engine.services import BudgetSetup, EngineServices
from orchestra.store import Database


def max_concurrent_agents(config: OrchestraConfig) -> int:
    """``engine.max_concurrent_agents`` or the organisation stage's limit."""
    if config.engine.max_concurrent_agents is not None:
        return config.engine.max_concurrent_agents
    from orchestra.org.stages import current_stage

    return int(current_stage(config).max_concurrent_agents)


def build_runtime(
    *,
    config: OrchestraConfig,
    database: Database,
    database_url: str,
    home: Path,
    client: ModelClient,
    pipelines: PipelineRegistry,
    agents: AgentSource | None = None,
    budget_setup: BudgetSetup | None = None,
    cost_source: Any | None = None,
    knowledge: Any | None = None,
    system_database_url: str | None = None,
) -> EngineRuntime:
    """An engine runtime (not yet launched) with this process's executor and queue."""
    executor = f"orchestra-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    services = EngineServices(
        config=config,
        database=database,
        home=home,
        client=client,
        agents=agents or RosterAgents.load(),
        runs=RunStore(database),
        artifacts=ArtifactStore(home, database),
        queue_name=f"agents-{executor}",
        budget_setup=budget_setup,
        knowledge=knowledge,
        cost_source=cost_source,
    )
    return EngineRuntime(
        services=services,
        system_database_url=system_database_url or default_system_database_url(database_url, home),
        pipelines=pipelines,
        max_concurrent_agents=max_concurrent_agents(config),
        executor_id=executor,
    )


@contextmanager
def runtime_with_local_gateway(
    *,
    config: OrchestraConfig,
    database: Database,
    database_url: str,
    home: Path,
    pipelines: PipelineRegistry,
    agents: AgentSource | None = None,
    knowledge: Any | None = None,
) -> Iterator[tuple[EngineRuntime, LocalGateway]]:
    """The gateway on loopback and a launched engine runtime calling it over HTTP.

    Run budgets are defined in that gateway and report costs read from its ledger; all of
    it is stopped when the block ends.
    """
    with local_gateway(config, database) as gateway:
        client = HttpModelClient(gateway.base_url, gateway.api_key)
        runtime = build_runtime(
            config=config,
            database=database,
            database_url=database_url,
            home=home,
            client=client,
            pipelines=pipelines,
            agents=agents,
            budget_setup=gateway.define_run_budget,
            cost_source=gateway,
            knowledge=knowledge,
        )
        try:
            runtime.launch()
            try:
                yield runtime, gateway
            finally:
                runtime.shutdown()
        finally:
            client.close()


def open_knowledge(location: Path | None, say: Callable[[str], None]) -> Any | None:
    """The knowledge store for plans and findings; the run goes on without it if it fails."""
    try:
        from orchestra.knowledge import KnowledgeStore

        return KnowledgeStore.open(location)
    except Exception as exc:  # optional: a broken store must not stop the pipeline
        say(f"knowledge store unavailable ({exc}); continuing without it")
        return None
