"""Configuration section ``engine``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestra.config.models import StrictModel
from orchestra.config.scheduling import SchedulingSettings

DEFAULT_ALLOWED_COMMANDS: tuple[str, ...] = ("python", "pytest", "ruff", "git", "ls", "cat")


class RepositoryEngineSettings(StrictModel):
    """Per-repository overrides, keyed by the repository folder's name."""

    test_command: list[str] | None = None
    """Command that runs the repository's tests, e.g. ``["go", "test", "./..."]``."""
    allowed_commands: list[str] | None = None


class ModelRetrySettings(StrictModel):
    """How the agent loop retries a model call refused for a while (429 rate limit, 529
    overloaded, 5xx): the server's ``retry-after`` is honoured within these bounds."""

    max_attempts: int = Field(default=4, ge=1)
    """Calls in all, the first included (1: never retry)."""
    base_delay_s: float = Field(default=1.0, ge=0)
    """First wait when the server does not say how long; doubled on each retry."""
    max_wait_s: float = Field(default=60.0, ge=0)
    """A server asking for a longer wait is not waited for: the step fails with its message."""
    max_total_wait_s: float = Field(default=120.0, ge=0)
    """Waiting for one call never adds up to more than this."""


class WorkerSettings(StrictModel):
    """Engine workers sharing a PostgreSQL database: their leases and the reaper that
    recovers a dead worker's workflows (see ``docs/scheduling.md``)."""

    executor_id: str | None = Field(default=None, min_length=1, max_length=128)
    """This worker's DBOS executor id (``$ORCHESTRA_EXECUTOR_ID`` wins); unset, a new
    unique one per process. A second live worker with the same id is refused at start."""
    heartbeat_s: float = Field(default=5.0, gt=0)
    """How often a worker renews its lease (its heartbeat) and its reaper looks for dead
    workers."""
    timeout_s: float = Field(default=30.0, gt=0)
    """A worker whose heartbeat is older than this is dead: a reaper recovers its work.
    Keep it several heartbeats long."""
    drain_timeout_s: float = Field(default=120.0, gt=0)
    """On SIGTERM, how long a worker waits for its steps in progress to finish."""
    distribute: bool = False
    """Runs go onto the shared run queue that every ``orchestra worker`` takes them from
    (``orchestra run`` as with ``--queue``, and ``POST /api/v1/runs``) instead of running
    in the process that starts them. PostgreSQL only."""
    max_active: int = Field(default=2, ge=1)
    """Runs from the shared run queue one worker works on at once. One value for every
    worker: DBOS keeps a queue's limits in the system database (the latest worker to
    start declares it)."""
    sweep_s: float = Field(default=60.0, gt=0)
    """How often a worker's reaper looks for workflows stranded on the queues of workers
    already recovered or stopped, and moves them."""

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> WorkerSettings:
        if self.timeout_s < 3 * self.heartbeat_s:
            raise ValueError(
                f"engine.workers.timeout_s ({self.timeout_s:g}) must be at least three "
                f"heartbeats ({3 * self.heartbeat_s:g} s), or live workers are taken for dead"
            )
        return self


class EngineSection(StrictModel):
    """Pipeline engine settings: concurrency, workspace limits, test command."""

    gateway_url: str | None = None
    """Base URL of the gateway agents call; ``None`` means the in-process gateway core."""
    gateway_key_env: str = "ORCHESTRA_GATEWAY_KEY"
    """Environment variable holding the gateway key the engine uses (never the key)."""
    developer: str | None = None
    """Who runs started here are charged to (with their team), when the gateway runs in
    this process: a name in ``organisation.developers``. ``$ORCHESTRA_DEVELOPER`` wins;
    unset, the organisation's only developer. With ``gateway_url`` the developer is the
    owner of the key in ``gateway_key_env``."""
    model_override: str | None = None
    """Request this model for every agent instead of the agent's tier (e.g. a local model)."""
    max_concurrent_agents: int | None = Field(default=None, ge=1)
    """Upper bound on agents running at once; ``None`` takes the organisation stage's."""
    test_command: list[str] = Field(
        default_factory=lambda: ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    )
    """How the repository's tests run (pytest by default); the engine appends test paths."""
    allowed_commands: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_COMMANDS))
    """Executables agents may start through ``run_command``."""
    repositories: dict[str, RepositoryEngineSettings] = Field(default_factory=dict)
    command_timeout_s: float = Field(default=120.0, gt=0)
    """Wall-clock limit of one command or test run; the whole process group is killed after."""
    command_memory_mb: int = Field(default=2048, ge=64)
    """Address-space limit (RLIMIT_AS) of commands the engine starts."""
    isolate_network: bool = True
    """Run commands without network (``unshare -rn``) where the platform allows it."""
    max_turns: int = Field(default=24, ge=1)
    """Model turns one agent may take in one step before it is stopped."""
    red_attempts: int = Field(default=3, ge=1)
    """How many times the test writer may try to produce tests that fail for the right reason."""
    green_iterations: int = Field(default=3, ge=1)
    """Implementation rounds (with failing output fed back) before the run fails."""
    fix_rounds: int = Field(default=1, ge=0)
    """Rounds of fixes for blocking review findings."""
    skip_reviews: list[Literal["security", "code-review", "docs", "qa"]] = Field(
        default_factory=list
    )
    """Reviews of the review phase not run. Each skip is a ``skip_phase`` request (its
    ``phase``: the review's name) that the policies may refuse, e.g. the security review
    of ``pci`` repositories; a refused skip stops the run before it starts."""
    land_on_success: bool = False
    """Land every run that succeeds through its repository's merge queue before it ends:
    its branch is queued to land on the branch the repository has checked out, rebased
    onto it, tested there with the repository's own test command, and fast-forwarded when
    green; a conflict or red tests are left for a person, as with ``orchestra land``
    (``docs/merge-queue.md``). The run succeeds whatever the landing's outcome."""
    run_budget_usd: float | None = Field(default=5.0, ge=0)
    """Per-run budget enforced by the gateway; ``None`` for no run budget."""
    max_output_tokens: int = Field(default=4096, ge=1)
    loop_repeats: int = Field(default=3, ge=2)
    """Tell an agent that repeats the same tool call with the same result this many times."""
    max_corrections: int = Field(default=2, ge=0)
    """A model's mistakes of one kind (malformed or unknown tool calls, text-only replies,
    repeated calls) told back to it before the next one ends its step."""
    max_continuations: int = Field(default=2, ge=0)
    """Replies cut off at ``max_output_tokens`` the model is asked to continue in a step."""
    model_retry: ModelRetrySettings = Field(default_factory=ModelRetrySettings)
    """Waiting and retrying model calls refused by rate limits and overloads."""
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    """Worker leases, heartbeats, the reaper and draining (PostgreSQL)."""
    scheduling: SchedulingSettings = Field(default_factory=SchedulingSettings)
    """Which agent step gets the next organisation-wide agent slot: topology and quotas."""
