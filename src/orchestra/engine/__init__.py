"""The durable pipeline engine: DBOS workflows, the agent loop, model clients, artefacts."""

from orchestra.engine.agent import AgentOutcome, AgentRunner, AgentTask
from orchestra.engine.agents import AgentProfile, AgentSource, RosterAgents
from orchestra.engine.artifacts import ArtifactStore
from orchestra.engine.model import (
    Attribution,
    BudgetExhausted,
    HttpModelClient,
    InProcessModelClient,
    ModelCallFailed,
    ModelClient,
    ModelResponse,
)
from orchestra.engine.runs import RunNotFound, RunStore
from orchestra.engine.runtime import EngineRuntime, EngineServices

__all__ = [
    "AgentOutcome",
    "AgentProfile",
    "AgentRunner",
    "AgentSource",
    "AgentTask",
    "ArtifactStore",
    "Attribution",
    "BudgetExhausted",
    "EngineRuntime",
    "EngineServices",
    "HttpModelClient",
    "InProcessModelClient",
    "ModelCallFailed",
    "ModelClient",
    "ModelResponse",
    "RosterAgents",
    "RunNotFound",
    "RunStore",
]
