"""The main job offline: a sample repository taken to a green, reviewed branch.

This module sits above the library, next to the CLI: only ``orchestra demo`` (lazily),
the tests and the benchmarks import it, never ``orchestra run``, ``serve`` or the gateway.

The model is scripted (:mod:`orchestra.testing.scripted` on a real
:class:`~orchestra.testing.FakeUpstream`); everything else is real: the gateway routes,
budgets and records every call over HTTP, the engine enforces its gates on real test
runs, git holds the result.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestra.app import Orchestra, open_knowledge
from orchestra.config import OrchestraConfig, parse_config
from orchestra.engine import EngineRuntime
from orchestra.engine.gateway_link import LocalGateway
from orchestra.store import Database
from orchestra.testing import CommitReplay, FakeUpstream
from orchestra.testing.scripted import SAMPLE_TASK, ScriptedModel, create_sample_repository
from orchestra.testing.steps import ToolCall

# Dollars per million tokens the demo prices its scripted tiers at, so the report's costs
# are computed (usage x price) the way they are for a real provider.
DEMO_PRICES = {
    "opus": (15.0, 75.0),
    "sonnet": (3.0, 15.0),
    "haiku": (0.8, 4.0),
}


def scripted_config_yaml(upstream_url: str, extra_yaml: str = "") -> str:
    """``orchestra.yaml`` text whose tiers are served by the scripted upstream."""
    lines = [
        "providers:",
        "  scripted:",
        "    kind: anthropic",
        f"    base_url: {upstream_url}",
        "models:",
    ]
    for tier, (price_in, price_out) in DEMO_PRICES.items():
        lines += [
            f"  scripted-{tier}:",
            "    provider: scripted",
            f"    price: {{input: {price_in}, output: {price_out}}}",
        ]
    lines.append("tiers:")
    lines += [f"  {tier}: {{model: scripted-{tier}}}" for tier in DEMO_PRICES]
    return "\n".join(lines) + "\n" + extra_yaml


def scripted_config(upstream_url: str, extra_yaml: str = "") -> OrchestraConfig:
    """A configuration whose tiers are served by the scripted upstream."""
    return parse_config(scripted_config_yaml(upstream_url, extra_yaml), source="<scripted demo>")


@dataclass
class ScriptedStack:
    """A scripted upstream, the gateway in front of it, and an engine runtime using it."""

    upstream: FakeUpstream | None
    """The scripted upstream this stack started (``None`` when given a URL)."""
    gateway: LocalGateway
    runtime: EngineRuntime
    database: Database
    config: OrchestraConfig
    services: Orchestra
    """The composition root the stack was built with."""


@contextmanager
def scripted_stack(
    home: Path,
    *,
    scenario: str = "happy",
    extra_yaml: str = "",
    database_url: str | None = None,
    latency_s: float = 0.0,
    review_latency_s: float = 0.0,
    agents: Any | None = None,
    upstream_url: str | None = None,
    knowledge: Any | None = None,
    take_queued_runs: bool = False,
) -> Iterator[ScriptedStack]:
    """Start everything the offline pipeline needs; stop it all afterwards.

    With ``upstream_url``, that (already scripted) upstream is used instead of a new one;
    with ``take_queued_runs`` the engine is a worker of the shared run queue.
    """
    url = database_url or f"sqlite:///{home / 'orchestra.db'}"
    upstream: FakeUpstream | None = None
    if upstream_url is None:
        upstream = FakeUpstream.start()
        upstream.responder = ScriptedModel(
            scenario, latency_s=latency_s, review_latency_s=review_latency_s
        )
        upstream_url = upstream.base_url
    config = scripted_config(upstream_url, extra_yaml)
    services = Orchestra(database_url=url, home=home, config_given=config)
    try:
        with services.engine_with_local_gateway(
            agents=agents, knowledge=knowledge, take_queued_runs=take_queued_runs
        ) as (runtime, gateway):
            yield ScriptedStack(upstream, gateway, runtime, services.database, config, services)
    finally:
        if upstream is not None:
            upstream.stop()
        services.close()


@contextmanager
def scripted_engine(
    home: Path,
    *,
    database_url: str,
    upstream_url: str,
    extra_yaml: str = "",
    agents: Any | None = None,
    gateway: tuple[str, str] | None = None,
) -> Iterator[tuple[EngineRuntime, Orchestra]]:
    """A launched engine whose tiers are served by the scripted upstream at
    ``upstream_url``: behind a gateway of its own in this process, or, with ``gateway``
    (``(url, developer key)``), calling that shared gateway (``engine.gateway_url``: e.g.
    ``orchestra gateway`` replicas). Yields the runtime and its composition root."""
    if gateway is None:
        with scripted_stack(
            home,
            database_url=database_url,
            upstream_url=upstream_url,
            agents=agents,
            extra_yaml=extra_yaml,
        ) as stack:
            yield stack.runtime, stack.services
        return
    config = scripted_config(upstream_url, extra_yaml)
    services = Orchestra(database_url=database_url, home=home, config_given=config)
    try:
        url, key = gateway
        with services.engine_with_remote_gateway(url, key, agents=agents) as runtime:
            yield runtime, services
    finally:
        services.close()


def run_demo(
    folder: Path,
    *,
    home: Path | None = None,
    say: Callable[[str], None] = print,
    fresh: bool = True,
    watch: Callable[[EngineRuntime, str, LocalGateway], Any] | None = None,
) -> dict[str, Any]:
    """Create the sample repository under ``folder`` and run the pipeline on it.

    The run is recorded in ``home`` (default: the state folder), so ``orchestra runs`` and
    ``orchestra report`` show it afterwards. ``watch(runtime, run_id, gateway)``, when
    given, follows the run (the CLI's live view) and returns its final row.
    """
    from orchestra.config import default_database_url, orchestra_home

    repo = folder / "sample-repo"
    if fresh and repo.exists():
        shutil.rmtree(repo)
    folder.mkdir(parents=True, exist_ok=True)
    repo = create_sample_repository(repo)
    database_url = None if home is not None else default_database_url()
    home = home or orchestra_home()
    say("The model is SCRIPTED: orchestra.testing.scripted plays each agent's role with real")
    say("tool calls on a sample repository; the gates, tests, git and gateway are real.")
    say(f"Sample repository: {repo}")
    knowledge = open_knowledge(home / "knowledge", say)
    with scripted_stack(home, knowledge=knowledge, database_url=database_url) as stack:
        say(f"Gateway (scripted upstream behind it): {stack.gateway.base_url}")
        started = time.monotonic()
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        say(f"Run {run_id}: {SAMPLE_TASK}")
        if watch is not None:
            row = watch(stack.runtime, run_id, stack.gateway)
        else:
            row = stack.runtime.wait(run_id, timeout_s=600)
        elapsed = time.monotonic() - started
        calls = len(stack.upstream.requests) if stack.upstream else 0
    return {
        "run_id": run_id,
        "status": row.status,
        "reason": row.failure_reason,
        "report": row.report_path,
        "branch": row.branch,
        "repo": str(repo),
        "worktree": row.worktree_path,
        "seconds": round(elapsed, 1),
        "model_calls": calls,
        "home": str(home),
    }


class UnsolvedReplay(CommitReplay):
    """Replays a commit's tests but none of its implementation: the run cannot pass. An
    experiment arm whose model fails some tasks, at $0."""

    def actions(self, step: str) -> list[list[ToolCall]]:
        """Green finishes without writing; every other step as the commit did."""
        if step.startswith("green"):
            return [[ToolCall("finish", {"summary": "gave up"})]]
        return super().actions(step)


@contextmanager
def replay_arm(
    arm: Any,
    *,
    home: Path,
    agents: Any | None = None,
    unsolved: frozenset[str] = frozenset(),
    extra_yaml: str = "",
) -> Iterator[Any]:
    """An experiment arm (:class:`orchestra.experiments.ArmSession`) whose model replays
    each task's commit; tasks whose text is in ``unsolved`` are replayed without their
    implementation. The arm's overlay is not applied: the scripted tiers serve every arm."""
    from orchestra.experiments import ArmSession, Task

    upstream = FakeUpstream.start()
    try:
        with scripted_stack(
            home / f"arm-{arm.name}",
            agents=agents,
            upstream_url=upstream.base_url,
            extra_yaml=extra_yaml,
        ) as stack:

            def prepare(task: Task) -> None:
                kind = UnsolvedReplay if task.text in unsolved else CommitReplay
                upstream.responder = kind.of(Path(task.repository), task.commit)

            def entries(run_id: str) -> list[Any]:
                ledger = stack.gateway.accounting.ledger
                return [e for e in ledger.entries() if e.attribution.run_id == run_id]

            yield ArmSession(stack.runtime, stack.config, entries, prepare)
    finally:
        upstream.stop()
