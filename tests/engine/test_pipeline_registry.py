"""The engine runs the pipelines it is handed, known only through the Pipeline protocol."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestra.app import Orchestra
from orchestra.config.loader import parse_config
from orchestra.engine import (
    EngineServices,
    PipelineDefinition,
    PipelineRegistry,
    RosterAgents,
    checkpoint,
    pipeline_workflow,
)
from orchestra.errors import EngineError
from orchestra.testing.scripted import create_sample_repository


@dataclass
class EchoState:
    """The toy pipeline's typed state."""

    steps: int = 0


CALLS: list[str] = []


@pipeline_workflow("orchestra.tests.echo")
def echo_workflow(svc: EngineServices, run_id: str) -> Mapping[str, Any]:
    """A one-step pipeline: records the task as a step, then ends the run succeeded."""
    state = EchoState()
    task = checkpoint("echo", lambda: CALLS.append(run_id) or svc.runs.get(run_id).task)
    state.steps += 1
    svc.runs.update(run_id, status="succeeded", phase="done", failure_reason=None)
    return {"echo": task, "steps": state.steps}


ECHO = PipelineDefinition(name="echo", workflow=echo_workflow, state_type=EchoState)


def _services(tmp_path: Path, pipelines: PipelineRegistry) -> Orchestra:
    return Orchestra(
        database_url=f"sqlite:///{tmp_path / 'orchestra.db'}",
        home=tmp_path,
        config_given=parse_config("{}", source="<test>"),
        pipelines_given=pipelines,
    )


def test_the_engine_runs_a_pipeline_it_was_handed(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with _services(tmp_path, PipelineRegistry.of([ECHO])) as services:
        no_model: Any = object()
        with services.engine(no_model, agents=pipeline_agents) as runtime:
            run_id = runtime.start_run("say hello", repo)
            row = runtime.wait(run_id, timeout_s=60)
            with pytest.raises(EngineError, match="no pipeline named 'test-first'"):
                runtime.start_run("say hello", repo, pipeline="test-first")
    assert row.status == "succeeded"
    assert row.pipeline == "echo"
    assert [run_id] == CALLS


def test_a_pipeline_whose_workflow_dbos_does_not_know_is_refused_at_launch(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    def not_registered(run_id: str) -> Mapping[str, Any]:
        return {}

    bare = PipelineDefinition(name="bare", workflow=not_registered, state_type=EchoState)
    with _services(tmp_path, PipelineRegistry.of([bare])) as services:
        no_model: Any = object()
        runtime = services.engine(no_model, agents=pipeline_agents)
        with pytest.raises(EngineError, match="not registered with DBOS"):
            runtime.launch()


def test_registry_refuses_duplicates_and_names_the_known_pipelines() -> None:
    registry = PipelineRegistry.of([ECHO])
    with pytest.raises(EngineError, match="already registered"):
        registry.add(ECHO)
    with pytest.raises(EngineError) as refused:
        registry.get("nope")
    assert refused.value.hint == "known pipelines: echo"
    assert registry.get() is ECHO
    with pytest.raises(EngineError, match="given no pipeline"):
        PipelineRegistry().get()


def test_the_builtin_registry_holds_test_first_first() -> None:
    from orchestra.pipelines import builtin_pipelines
    from orchestra.pipelines.test_first import TestFirstState

    registry = builtin_pipelines()
    assert registry.names() == ["test-first"]
    assert registry.get().state_type is TestFirstState


def _modules_after_import(*modules: str) -> set[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_no_engine_module_imports_a_pipeline() -> None:
    loaded = _modules_after_import("orchestra.engine", "orchestra.engine.gateway_link")
    assert not {m for m in loaded if m.startswith("orchestra.pipelines")}
    assert not {m for m in loaded if m.startswith(("orchestra.testing", "orchestra.demo"))}
