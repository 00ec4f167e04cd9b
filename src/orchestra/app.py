"""The composition root: the one place that builds Orchestra's object graph.

The CLI, the server, the demo, the benchmarks and the tests all assemble the database,
accounting, the gateway and the engine through :class:`Orchestra`, as datasette's CLI
builds one ``Datasette(...)`` and asks it for everything else. Library packages never
import this module; it imports them (it sits just under ``cli`` and ``server``, above
``pipelines``). The engine gets its pipelines here: :func:`~orchestra.pipelines.builtin_pipelines`
unless a caller hands others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestra.accounting import Accounting, AuditLog
from orchestra.config import (
    OrchestraConfig,
    default_database_url,
    find_config,
    load_config,
    orchestra_home,
)
from orchestra.gateway import (
    Gateway,
    GatewayApp,
    GatewayDeps,
    IdempotencyStore,
    StartupHook,
    StoreAccountant,
    gateway_tracer,
    traced,
    tracer_provider,
)
from orchestra.policy import PolicyEngine
from orchestra.store import Database, open_database

if TYPE_CHECKING:
    # The engine (and DBOS) load only when an engine is built: `orchestra gateway`'s
    # workers never need them.
    from orchestra.engine import (
        AgentSource,
        EngineRuntime,
        ModelClient,
        OrgSlots,
        PipelineRegistry,
        RunKeys,
        RunStore,
    )
    from orchestra.engine.gateway_link import LocalGateway
    from orchestra.experiments import Arm, ArmSession


@dataclass
class OpenedGateway:
    """A gateway over the database, and what must be closed with it."""

    gateway: Gateway
    close_hooks: list[StartupHook] = field(default_factory=list)


def open_knowledge(location: Path | None, say: Callable[[str], None]) -> Any | None:
    """The knowledge store for plans and findings; the run goes on without it if it fails."""
    try:
        from orchestra.knowledge import KnowledgeStore

        return KnowledgeStore.open(location)
    except Exception as exc:  # optional: a broken store must not stop the pipeline
        say(f"knowledge store unavailable ({exc}); continuing without it")
        return None


def _builtin_pipelines() -> PipelineRegistry:
    from orchestra.pipelines import builtin_pipelines

    return builtin_pipelines()


def max_concurrent_agents(config: OrchestraConfig) -> int:
    """``engine.max_concurrent_agents`` or the organisation stage's limit."""
    if config.engine.max_concurrent_agents is not None:
        return config.engine.max_concurrent_agents
    from orchestra.org.stages import current_stage

    return int(current_stage(config).max_concurrent_agents)


def org_slots(config: OrchestraConfig, system_database_url: str, executor: str) -> OrgSlots:
    """The organisation-wide agent slots of an engine: the cap, the stage's
    ``agents_per_developer``, the topology (``engine.scheduling.topology``, else the
    stage's) and its quotas' units, and whose agents this process runs (its executor when
    no developer is configured, so the developer limit then holds per process). Shared by
    every worker on a PostgreSQL system database; this process's own on SQLite."""
    from orchestra.engine import OrgSlots
    from orchestra.engine.gateway_link import run_developer
    from orchestra.errors import EngineError, SchedulingError
    from orchestra.org.stages import current_stage
    from orchestra.scheduling import QUOTA_LEVEL, check_weights, level_units, placements

    try:
        developer = run_developer(config)[0]
    except EngineError:
        developer = executor
    settings = config.engine.scheduling
    topology = settings.topology or current_stage(config).topology
    people = placements(config.organisation)
    level = QUOTA_LEVEL[topology]
    units = tuple(level_units(config.organisation, level, people.values())) if level else ()
    problems = check_weights(settings.weights, units, level) if level else []
    if settings.weights and level is None:
        problems = [f"{topology} has no quotas to weigh"]
    if problems:
        raise SchedulingError(
            f"engine.scheduling.weights: {'; '.join(problems)}",
            hint=f"name {level or 'no'} units of organisation.units"
            + (f" ({', '.join(units)})" if units else "; remove weights"),
        )
    return OrgSlots(
        capacity=max_concurrent_agents(config),
        per_developer=current_stage(config).agents_per_developer,
        developer=developer,
        executor=executor,
        topology=topology,
        settings=settings,
        people=people,
        units=units,
        shared=system_database_url.startswith(("postgresql", "postgres")),
    )


def refuse_tiers_without_credential(gateway: Gateway) -> None:
    """Refuse to run agents on a gateway some of whose tiers no model can serve for want
    of a provider credential: the run would fail at its first call to them (a 502), after
    its preflight; this says so before anything starts."""
    unservable = gateway.tiers_without_credential()
    if not unservable:
        return
    from orchestra.errors import GatewayError

    providers = sorted({p for chain in unservable.values() for p in chain})
    configured = gateway.snapshot.config.providers
    where = ", ".join(_credential_source(configured[p]) for p in providers)
    raise GatewayError(
        f"tier(s) {', '.join(sorted(unservable))} cannot be served: provider(s) "
        f"{', '.join(repr(p) for p in providers)} have no credential ({where})",
        hint="export the variable or store the secret (`orchestra secrets set NAME`), "
        "or point the tiers at a model that needs none; nothing was started",
    )


def _credential_source(provider: Any) -> str:
    if provider.api_key_env:
        return f"${provider.api_key_env} is not set"
    return f"secret {provider.api_key_secret!r} is not stored"


@dataclass
class Orchestra:
    """Orchestra's services for one process: configuration, state folder and database URL
    in; database, accounting, gateway and engine out.

    Nothing is read or opened until asked for (a command that lists runs never reads the
    configuration). Use it as a context manager (or call :meth:`close`): the database it
    opened is disposed at the end.
    """

    database_url: str
    home: Path
    config_given: OrchestraConfig | None = None
    """The configuration, when the caller has it; else read on first use."""
    config_path: Path | None = None
    """Where to read the configuration from (default: the nearest ``orchestra.yaml``)."""
    pipelines_given: PipelineRegistry | None = None
    """What engines built here run; the built-in pipelines unless given."""
    _config: OrchestraConfig | None = field(default=None, repr=False)
    _database: Database | None = field(default=None, repr=False)

    @classmethod
    def from_environment(
        cls,
        *,
        config: OrchestraConfig | None = None,
        config_path: Path | None = None,
        database_url: str | None = None,
        home: Path | None = None,
        pipelines: PipelineRegistry | None = None,
    ) -> Orchestra:
        """The services as the environment says: ``orchestra.yaml`` (the nearest, or
        ``config_path``), ``$ORCHESTRA_DATABASE_URL`` and ``$ORCHESTRA_HOME`` unless given;
        engines run ``pipelines`` (default: the built-in ones)."""
        return cls(
            database_url=database_url or default_database_url(),
            home=home or orchestra_home(),
            config_given=config,
            config_path=config_path,
            pipelines_given=pipelines,
        )

    @property
    def config(self) -> OrchestraConfig:
        """The configuration (read, and validated, on first use)."""
        if self._config is None:
            self._config = (
                self.config_given
                if self.config_given is not None
                else load_config(self.config_path)
            )
        return self._config

    @property
    def policy_base_dir(self) -> Path | None:
        """The folder a relative ``policies.folder`` is under: orchestra.yaml's folder
        (``None`` for a configuration given without its file: the working folder)."""
        if self.config_path is not None:
            return self.config_path.parent
        if self.config_given is None:
            found = find_config()
            return found.parent if found is not None else None
        return None

    @property
    def pipelines(self) -> PipelineRegistry:
        """The pipelines engines built here run (loaded on first use, with the engine)."""
        if self.pipelines_given is None:
            self.pipelines_given = _builtin_pipelines()
        return self.pipelines_given

    # -- storage -----------------------------------------------------------------------
    @property
    def database(self) -> Database:
        """The application database, opened (and migrated) on first use."""
        if self._database is None:
            self._database = open_database(self.database_url)
        return self._database

    def migrate(self) -> None:
        """Open the database once, applying its migrations (before workers start)."""
        _ = self.database

    @property
    def system_database_url(self) -> str:
        """Where DBOS keeps its workflow records (next to the application database)."""
        from orchestra.engine import default_system_database_url

        return default_system_database_url(self.database_url, self.home)

    def runs(self) -> RunStore:
        """The engine's runs and steps."""
        from orchestra.engine import RunStore

        return RunStore(self.database)

    def close(self) -> None:
        """Dispose of the database, if it was opened."""
        if self._database is not None:
            self._database.dispose()
            self._database = None

    def __enter__(self) -> Orchestra:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounting and the gateway ----------------------------------------------------
    def accounting(self) -> Accounting:
        """A new accounting facade over the database (the caller closes it)."""
        return Accounting(self.database, self.config, home=self.home)

    def policies(self) -> PolicyEngine:
        """The Cedar policies of ``orchestra.yaml``, auditing into the database's audit log."""
        return PolicyEngine.from_config(
            self.config,
            base_dir=self.policy_base_dir,
            audit=AuditLog(self.database, home=self.home),
        )

    def open_gateway(self, deps: GatewayDeps | None = None) -> OpenedGateway:
        """A :class:`Gateway` over the database, with the hooks that close what it holds."""
        accounting = self.accounting()
        deps = deps if deps is not None else GatewayDeps()
        if deps.policy_base_dir is None:
            deps.policy_base_dir = self.policy_base_dir
        if deps.idempotency is None:
            deps.idempotency = IdempotencyStore(self.database.engine)
        if deps.secrets is None and any(p.api_key_secret for p in self.config.providers.values()):
            from orchestra.accounting import SecretBox, SecretStore

            deps.secrets = SecretStore(SecretBox.from_home(self.home)).as_mapping()
        spans = tracer_provider(self.config.telemetry)  # None unless telemetry is on
        try:
            accountant = traced(StoreAccountant(accounting), gateway_tracer(spans))
            gateway = Gateway(self.config, accountant, deps)
        except BaseException:
            # A configuration the gateway refuses (e.g. a model with no price) must not
            # leave the accounting writer thread and the database connections behind.
            accounting.close()
            self.close()
            raise

        async def close() -> None:
            import asyncio

            await asyncio.to_thread(accounting.close)
            if spans is not None:
                await asyncio.to_thread(spans.shutdown)  # flushes the queued spans
            self.close()

        return OpenedGateway(gateway, [close])

    @contextmanager
    def local_gateway(self) -> Iterator[LocalGateway]:
        """The gateway served on a loopback port in this process until the block ends."""
        from orchestra.engine.gateway_link import serve_on_loopback

        accounting = self.accounting()
        accounting.start()
        spans = tracer_provider(self.config.telemetry)
        try:
            deps = GatewayDeps(
                policy_base_dir=self.policy_base_dir,
                idempotency=IdempotencyStore(self.database.engine),
            )
            accountant = traced(StoreAccountant(accounting), gateway_tracer(spans))
            core = Gateway(self.config, accountant, deps)
            refuse_tiers_without_credential(core)
            app = GatewayApp(core)
            with serve_on_loopback(app, accounting) as gateway:
                yield gateway
        finally:
            accounting.close()
            if spans is not None:
                spans.shutdown()

    # -- the engine --------------------------------------------------------------------
    def pool_agents(self, developer: str, say: Callable[[str], None] | None = None) -> AgentSource:
        """The agents ``developer`` may use: their unit's pool in the agent registry (an
        agent outside it is refused naming the pool and the unit). Each deprecated version
        served is said through ``say``."""
        from orchestra.engine import RosterAgents
        from orchestra.org import load_org
        from orchestra.registry import AgentRegistry, UnitPools, UnknownUnit

        tree = load_org(self.database)
        if tree is None:
            raise UnknownUnit(
                "no organisation is stored, so no developer has an agent pool",
                hint="run `orchestra org sync`, or run without --developer",
            )
        registry = AgentRegistry(self.database, home=self.home)
        try:
            roster = UnitPools(registry, tree).roster_for(developer)
        finally:
            registry.close()
        if say is not None:
            for warning in roster.warnings:
                say(f"warning: {warning}")
        return RosterAgents(roster)

    def knowledge(self, say: Callable[[str], None], location: Path | None = None) -> Any | None:
        """The knowledge store (``None``, said through ``say``, when it cannot open)."""
        return open_knowledge(location, say)

    def engine(
        self,
        client: ModelClient,
        *,
        agents: AgentSource | None = None,
        run_keys: RunKeys | None = None,
        cost_source: Any | None = None,
        knowledge: Any | None = None,
        system_database_url: str | None = None,
        take_queued_runs: bool = False,
    ) -> EngineRuntime:
        """An engine runtime (not yet launched) with this process's executor and queue,
        running :attr:`pipelines` and calling the model through ``client``; with
        ``take_queued_runs``, a worker of the shared run queue (PostgreSQL)."""
        from orchestra.engine import (
            ArtifactStore,
            EngineRuntime,
            EngineServices,
            RosterAgents,
            RunStore,
            agent_queue_name,
            worker_executor_id,
        )

        executor = worker_executor_id(self.config)
        system_url = system_database_url or self.system_database_url
        services = EngineServices(
            config=self.config,
            database=self.database,
            home=self.home,
            client=client,
            agents=agents or RosterAgents.load(),
            runs=RunStore(self.database),
            artifacts=ArtifactStore(self.home, self.database),
            queue_name=agent_queue_name(executor),
            run_keys=run_keys,
            knowledge=knowledge,
            cost_source=cost_source,
            policy=self.policies(),
            org_slots=org_slots(self.config, system_url, executor),
        )
        return EngineRuntime(
            services=services,
            system_database_url=system_url,
            pipelines=self.pipelines,
            max_concurrent_agents=max_concurrent_agents(self.config),
            executor_id=executor,
            take_queued_runs=take_queued_runs,
        )

    @contextmanager
    def engine_with_local_gateway(
        self,
        *,
        agents: AgentSource | None = None,
        knowledge: Any | None = None,
        take_queued_runs: bool = False,
    ) -> Iterator[tuple[EngineRuntime, LocalGateway]]:
        """The gateway on loopback and a launched engine calling it over HTTP.

        Each run gets its own key and budget in that gateway, charged to the configured
        developer (:func:`~orchestra.engine.gateway_link.run_developer`); reports read costs
        from its ledger. All of it is stopped when the block ends.
        """
        from orchestra.engine import HttpModelClient
        from orchestra.engine.gateway_link import LocalRunKeys, run_developer

        developer, team = run_developer(self.config)
        with self.local_gateway() as gateway:
            client = HttpModelClient(gateway.base_url, "")
            runtime = self.engine(
                client,
                agents=agents,
                run_keys=LocalRunKeys(gateway.accounting, developer, team),
                cost_source=gateway,
                knowledge=knowledge,
                take_queued_runs=take_queued_runs,
            )
            try:
                with runtime:
                    yield runtime, gateway
            finally:
                client.close()

    @contextmanager
    def engine_with_remote_gateway(
        self,
        url: str,
        key: str,
        *,
        agents: AgentSource | None = None,
        take_queued_runs: bool = False,
    ) -> Iterator[EngineRuntime]:
        """A launched engine calling the gateway at ``url``: each run with its own key,
        which the gateway makes from ``key`` (the developer's) with the run's budget."""
        from orchestra.engine import HttpModelClient
        from orchestra.engine.gateway_link import GatewayRunKeys

        client = HttpModelClient(url, key)
        run_keys = GatewayRunKeys(url, key)
        try:
            runtime = self.engine(
                client, agents=agents, run_keys=run_keys, take_queued_runs=take_queued_runs
            )
            with runtime:
                yield runtime
        finally:
            client.close()
            run_keys.close()


@contextmanager
def experiment_arm(
    arm: Arm,
    *,
    database_url: str,
    home: Path,
    base_config: OrchestraConfig,
    agents: AgentSource | None = None,
) -> Iterator[ArmSession]:
    """The engine of one experiment arm: ``base_config`` with the arm's overlay, its own
    gateway on loopback (costs and latencies in the shared ledger, by run)."""
    from orchestra.experiments import ArmSession, arm_config

    config = arm_config(base_config, arm)
    services = Orchestra(database_url=database_url, home=home, config_given=config)
    try:
        with services.engine_with_local_gateway(agents=agents) as (runtime, gateway):

            def entries(run_id: str) -> list[Any]:
                return [
                    e for e in gateway.accounting.ledger.entries() if e.attribution.run_id == run_id
                ]

            yield ArmSession(runtime, config, entries)
    finally:
        services.close()


__all__ = [
    "OpenedGateway",
    "Orchestra",
    "experiment_arm",
    "max_concurrent_agents",
    "open_knowledge",
    "refuse_tiers_without_credential",
]
