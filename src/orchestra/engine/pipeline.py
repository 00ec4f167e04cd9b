"""What the engine runs: the pipelines it is handed, never ones it imports.

As Temporal's ``Worker(workflows=[...])`` is handed its workflows, the engine is handed a
:class:`PipelineRegistry` filled by the composition root (:mod:`orchestra.app`). A
pipeline is anything with the :class:`Pipeline` shape: a name recorded on each run, a
durable workflow entry (registered with DBOS through
:func:`~orchestra.engine.durable.pipeline_workflow`) and the type of the state its phases
share. Each pipeline package registers itself with a ``register(registry)`` function.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from orchestra.engine.durable import Workflow, registered_workflow_name
from orchestra.errors import EngineError


@runtime_checkable
class Pipeline(Protocol):
    """A pipeline the engine can start, resume and cancel."""

    @property
    def name(self) -> str:
        """Stable name recorded on each run (``test-first``); ``orchestra run`` picks by it."""
        ...

    @property
    def workflow(self) -> Workflow:
        """The DBOS workflow that runs one run (``run_id -> outcome``)."""
        ...

    @property
    def state_type(self) -> type[Any]:
        """The typed state (a dataclass) that one run's phases share."""
        ...


@dataclass(frozen=True)
class PipelineDefinition:
    """A ready-made :class:`Pipeline`: what a pipeline package declares and registers."""

    name: str
    workflow: Workflow
    state_type: type[Any]
    description: str = ""
    """One line for listings (``orchestra run --pipeline``'s help, docs)."""


@dataclass
class PipelineRegistry:
    """The pipelines one engine runs, by name; the first registered is the default."""

    _pipelines: dict[str, Pipeline] = field(default_factory=dict)

    @classmethod
    def of(cls, pipelines: Iterable[Pipeline]) -> PipelineRegistry:
        """A registry holding ``pipelines`` in order."""
        registry = cls()
        for pipeline in pipelines:
            registry.add(pipeline)
        return registry

    def add(self, pipeline: Pipeline) -> None:
        """Register ``pipeline``; a second pipeline with the same name is refused."""
        if not isinstance(pipeline, Pipeline):
            raise EngineError(
                f"{pipeline!r} is not a pipeline",
                hint="register an object with name, workflow and state_type "
                "(orchestra.engine.PipelineDefinition)",
            )
        if pipeline.name in self._pipelines:
            raise EngineError(
                f"a pipeline named {pipeline.name!r} is already registered",
                hint="give each pipeline its own name",
            )
        self._pipelines[pipeline.name] = pipeline

    def get(self, name: str | None = None) -> Pipeline:
        """The pipeline called ``name`` (``None``: the default one)."""
        if not self._pipelines:
            raise EngineError(
                "the engine was given no pipeline",
                hint="build the engine through orchestra.app.Orchestra, which registers "
                "the built-in pipelines",
            )
        if name is None:
            return next(iter(self._pipelines.values()))
        try:
            return self._pipelines[name]
        except KeyError:
            raise EngineError(
                f"no pipeline named {name!r}",
                hint=f"known pipelines: {', '.join(self._pipelines)}",
            ) from None

    def names(self) -> list[str]:
        """Names of the registered pipelines, the default first."""
        return list(self._pipelines)

    def check_registered(self) -> None:
        """Refuse pipelines whose workflow DBOS does not know (checked before launch)."""
        for pipeline in self:
            if registered_workflow_name(pipeline.workflow) is None:
                raise EngineError(
                    f"the workflow of pipeline {pipeline.name!r} is not registered with DBOS",
                    hint="create it with orchestra.engine.pipeline_workflow(name) at import "
                    "time, in the pipeline's module",
                )

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(self._pipelines.values())

    def __len__(self) -> int:
        return len(self._pipelines)
