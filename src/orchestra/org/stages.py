"""Growth stages: presets that size Orchestra to the organisation's headcount.

Each stage fixes a topology (how agent work is coordinated) and an agent allocation:
a pool of agents the whole organisation shares (architects, reviewers, security) plus a
number of agents each developer may run at once. The allocation never exceeds the
stage's ``max_concurrent_agents``; at the top headcount of each bounded stage,
``shared_agents + agents_per_developer * max_developers == max_concurrent_agents``.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestra.config.schema import OrchestraConfig


@dataclass(frozen=True)
class Stage:
    """A preset for one size of organisation."""

    name: str
    topology: str
    """How agent work is coordinated: ``single_node``, ``mesh``, ``hierarchical``,
    ``federated_hierarchical`` or ``enterprise_mesh``."""
    min_developers: int
    max_developers: int | None
    """``None``: no upper bound."""
    max_concurrent_agents: int
    """Hard cap on agents running at the same time across the organisation."""
    shared_agents: int
    """Agents reserved for the organisation as a whole (review, security, architecture)."""
    agents_per_developer: int
    """Agents each developer may run at the same time."""
    description: str

    def agent_allocation(self, headcount: int) -> int:
        """Agents the organisation may run at once with ``headcount`` developers."""
        wanted = self.shared_agents + self.agents_per_developer * max(headcount, 0)
        return min(wanted, self.max_concurrent_agents)

    def admits(self, headcount: int) -> bool:
        """Whether ``headcount`` falls in this stage's range."""
        upper = self.max_developers if self.max_developers is not None else headcount
        return self.min_developers <= headcount <= upper


STAGES: tuple[Stage, ...] = (
    Stage(
        "individual",
        "single_node",
        1,
        1,
        10,
        2,
        8,
        "One developer; every agent runs in one process on one machine.",
    ),
    Stage(
        "small_team",
        "mesh",
        2,
        8,
        25,
        9,
        2,
        "A few developers; agents of any developer may hand work to any other agent.",
    ),
    Stage(
        "medium",
        "hierarchical",
        9,
        25,
        75,
        25,
        2,
        "Squads with leads; work flows from lead agents down to specialists and back.",
    ),
    Stage(
        "large",
        "federated_hierarchical",
        26,
        75,
        200,
        50,
        2,
        "Tribes run their own hierarchies; a shared layer coordinates across tribes.",
    ),
    Stage(
        "enterprise",
        "enterprise_mesh",
        76,
        None,
        1000,
        200,
        1,
        "Divisions with federated hierarchies joined by an organisation-wide mesh; the "
        "1000-agent cap binds from 800 developers.",
    ),
)
"""The five stages, smallest first."""


def stage_named(name: str) -> Stage:
    """The stage called ``name``; :class:`KeyError` if there is none."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(name)


def stage_for_headcount(headcount: int) -> Stage:
    """The stage for an organisation of ``headcount`` developers (0 counts as individual)."""
    if headcount < 0:
        raise ValueError(f"headcount cannot be negative: {headcount}")
    for stage in STAGES:
        if stage.admits(max(headcount, 1)):
            return stage
    return STAGES[-1]


def next_stage(stage: Stage) -> Stage | None:
    """The stage after ``stage``, or ``None`` for the last."""
    index = STAGES.index(stage)
    return STAGES[index + 1] if index + 1 < len(STAGES) else None


@dataclass(frozen=True)
class StageAssessment:
    """Which stage applies to a configured organisation, and why."""

    stage: Stage
    """The stage in force (the pinned one when ``stage:`` is set)."""
    headcount: int
    by_headcount: Stage
    """The stage the headcount alone implies."""
    pinned: bool
    """Whether ``organisation.stage`` was set explicitly."""
    warnings: tuple[str, ...]
    next: Stage | None
    changes_at_next: tuple[str, ...]
    """What would change on moving to ``next``."""


def stage_changes(current: Stage, upcoming: Stage) -> tuple[str, ...]:
    """Human-readable differences between two stages."""
    changes = [
        f"headcount range {upcoming.min_developers}"
        + (f"-{upcoming.max_developers}" if upcoming.max_developers else "+")
        + " developers",
    ]
    if current.topology != upcoming.topology:
        changes.append(f"topology {current.topology} -> {upcoming.topology}")
    changes.append(
        f"max concurrent agents {current.max_concurrent_agents} -> {upcoming.max_concurrent_agents}"
    )
    if current.shared_agents != upcoming.shared_agents:
        changes.append(f"shared agents {current.shared_agents} -> {upcoming.shared_agents}")
    if current.agents_per_developer != upcoming.agents_per_developer:
        changes.append(
            f"agents per developer {current.agents_per_developer} -> "
            f"{upcoming.agents_per_developer}"
        )
    return tuple(changes)


def assess_stage(config: OrchestraConfig) -> StageAssessment:
    """The stage of the configured organisation, with warnings and the next step."""
    section = config.organisation
    headcount = len(section.developers)
    derived = stage_for_headcount(headcount)
    warnings: list[str] = []
    if headcount == 0:
        warnings.append("the organisation lists no developers; add at least one")
    stage = derived
    if section.stage is not None:
        stage = stage_named(section.stage)
        if stage != derived:
            warnings.append(
                f"organisation.stage is {stage.name!r} but {headcount} developer(s) "
                f"fit {derived.name!r}; remove `stage:` to follow the headcount"
            )
    upcoming = next_stage(stage)
    return StageAssessment(
        stage=stage,
        headcount=headcount,
        by_headcount=derived,
        pinned=section.stage is not None,
        warnings=tuple(warnings),
        next=upcoming,
        changes_at_next=stage_changes(stage, upcoming) if upcoming else (),
    )


def current_stage(config: OrchestraConfig) -> Stage:
    """The stage in force for ``config`` (pinned ``stage:`` wins over the headcount)."""
    return assess_stage(config).stage
