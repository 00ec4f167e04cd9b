"""The durable pipeline engine: DBOS workflows, the agent loop, model clients, artefacts.

The engine runs the pipelines it is handed (:class:`PipelineRegistry`), never one it
imports; :mod:`orchestra.app` builds it with the built-in pipelines.
"""

from orchestra.engine.agent import AgentOutcome, AgentRunner, AgentTask
from orchestra.engine.agents import AgentProfile, AgentSource, RosterAgents
from orchestra.engine.artifacts import ArtifactStore, run_pool
from orchestra.engine.cancelling import RunAlreadyEnded, cancel_run
from orchestra.engine.continuing import CONTINUED, current_workflow, next_workflow
from orchestra.engine.costs import RunCost, ledger_cost
from orchestra.engine.durable import (
    Workflow,
    checkpoint,
    pipeline_workflow,
    run_agents,
)
from orchestra.engine.fleet import shared_database, worker_executor_id
from orchestra.engine.model import (
    Attribution,
    BudgetExhausted,
    HttpModelClient,
    InProcessModelClient,
    ModelCallFailed,
    ModelClient,
    ModelResponse,
)
from orchestra.engine.pipeline import Pipeline, PipelineDefinition, PipelineRegistry
from orchestra.engine.recovery import agent_queue_name
from orchestra.engine.retries import ModelRetry, RetryHint, retry_hint
from orchestra.engine.run_policy import require_run_start
from orchestra.engine.run_queue import RUN_QUEUE, shared_queue
from orchestra.engine.runs import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    RunNotFound,
    RunStore,
    budget_stop,
    resume_command,
    stopped_by_budget,
)
from orchestra.engine.runtime import (
    EngineRuntime,
    check_repository,
    dbos_threads,
    default_system_database_url,
    new_run_id,
    orphaned_runs,
    pid_alive,
)
from orchestra.engine.services import (
    ChildSignals,
    EngineServices,
    RunKeys,
    engine_source,
    services,
)
from orchestra.engine.slots import OrgSlots
from orchestra.engine.workers import (
    SchedulingConflict,
    WorkerConflict,
    WorkerInfo,
    WorkerRegistry,
)

__all__ = [
    "ACTIVE_STATUSES",
    "CONTINUED",
    "FINAL_STATUSES",
    "RUN_QUEUE",
    "AgentOutcome",
    "AgentProfile",
    "AgentRunner",
    "AgentSource",
    "AgentTask",
    "ArtifactStore",
    "Attribution",
    "BudgetExhausted",
    "ChildSignals",
    "EngineRuntime",
    "EngineServices",
    "HttpModelClient",
    "InProcessModelClient",
    "ModelCallFailed",
    "ModelClient",
    "ModelResponse",
    "ModelRetry",
    "OrgSlots",
    "Pipeline",
    "PipelineDefinition",
    "PipelineRegistry",
    "RetryHint",
    "RosterAgents",
    "RunAlreadyEnded",
    "RunCost",
    "RunKeys",
    "RunNotFound",
    "RunStore",
    "SchedulingConflict",
    "WorkerConflict",
    "WorkerInfo",
    "WorkerRegistry",
    "Workflow",
    "agent_queue_name",
    "budget_stop",
    "cancel_run",
    "check_repository",
    "checkpoint",
    "current_workflow",
    "dbos_threads",
    "default_system_database_url",
    "engine_source",
    "ledger_cost",
    "new_run_id",
    "next_workflow",
    "orphaned_runs",
    "pid_alive",
    "pipeline_workflow",
    "require_run_start",
    "resume_command",
    "retry_hint",
    "run_agents",
    "run_pool",
    "services",
    "shared_database",
    "shared_queue",
    "stopped_by_budget",
    "worker_executor_id",
]
