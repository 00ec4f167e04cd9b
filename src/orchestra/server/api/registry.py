"""``/api/v1/registry``: the agent registry — listing, search, provenance and diffs,
publishing and review, unit pools, and seeding the built-in agents.

Handlers only parse, call :mod:`orchestra.registry` and present. Each route's action is
checked by the role table first (a developer cannot approve: 403, audited ``role.deny``);
the registry then asks the Cedar policies with the agent or unit concerned, and a policy
refusal is audited ``policy.deny`` with its ids and answers 403 naming them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestra.identity import register_action
from orchestra.org import OrgTree, load_org
from orchestra.policy import PolicyEngine
from orchestra.registry import (
    AgentRegistry,
    AgentSummary,
    AgentVersion,
    PoolView,
    UnitPools,
    UnknownUnit,
    search,
    seed_builtins,
)
from orchestra.server.api.endpoint import Call, Endpoint, Page, page_of
from orchestra.server.api.policy_check import PolicyAuthorizer, policy_principal

_READERS = frozenset({"admin", "lead", "developer", "viewer"})
_MEMBERS = frozenset({"admin", "lead", "developer"})
_LEADS = frozenset({"admin", "lead"})
for _name, _roles, _scoped in (
    ("read_registry", _READERS, False),
    ("publish_agent", _MEMBERS, False),
    ("approve_agent", _LEADS, False),
    ("deprecate_agent", _LEADS, False),
    ("yank_agent", _LEADS, False),
    ("manage_agent_pool", _LEADS, True),
    ("seed_registry", frozenset({"admin"}), False),
):
    register_action(_name, _roles, unit_scoped=_scoped, mutating=_name != "read_registry")

TAG = "registry"
READ_STATUSES = (400, 401, 403, 404)
CHANGE_STATUSES = (400, 401, 403, 404, 409, 422)
"""A version or agent unknown (404), a state that does not allow it (409), a definition
that is not valid (422)."""


class VersionOut(BaseModel):
    """One published version of an agent and its provenance."""

    agent: str
    version: int
    state: str
    digest: str
    description: str
    category: str
    tags: list[str]
    publisher: str
    published_at: str
    reviewed_by: str | None
    reviewed_at: str | None
    changed_by: str | None
    changed_at: str | None
    note: str
    definition: str | None = None


class SummaryOut(BaseModel):
    """An agent: the version served (``null``: none is) and its newest version."""

    agent: str
    served: VersionOut | None
    latest: VersionOut
    warning: str | None


class AgentList(BaseModel):
    """A page of agents, sorted by name."""

    items: list[SummaryOut]
    next_offset: int | None


class AgentOut(BaseModel):
    """An agent with every version, oldest first."""

    agent: str
    served: int | None
    warning: str | None
    versions: list[VersionOut]


class DiffOut(BaseModel):
    """The unified diff between two versions ("" when identical)."""

    agent: str
    old: int
    new: int
    diff: str


class PoolOut(BaseModel):
    """The agents a unit may use, and which units narrow that."""

    unit: str
    chain: list[str]
    own: list[str] | None
    restricted_by: list[str]
    agents: list[str]


class SeedOut(BaseModel):
    """What seeding the built-in agents did."""

    published: list[str]
    unchanged: int


class AgentQuery(Page):
    """Which agents: words to find, a category, a tag; ``all`` includes unservable ones."""

    q: str = Field(default="", max_length=200)
    category: str | None = Field(default=None, max_length=100)
    tag: str | None = Field(default=None, max_length=100)
    all: bool = False


class ShowQuery(BaseModel):
    """Include each version's definition."""

    model_config = ConfigDict(extra="forbid")
    definition: bool = False


class DiffQuery(BaseModel):
    """The two versions (``3`` or ``v3``)."""

    model_config = ConfigDict(extra="forbid")
    old: str = Field(min_length=1, max_length=20)
    new: str = Field(min_length=1, max_length=20)


class PublishIn(BaseModel):
    """An agent file (Markdown with front matter), published pending review."""

    model_config = ConfigDict(extra="forbid")
    definition: str = Field(min_length=1, max_length=200_000)


class ChangeIn(BaseModel):
    """Why (kept with the version)."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


class PoolIn(BaseModel):
    """A unit's own pool: agent names, ``category:<name>`` or ``*``."""

    model_config = ConfigDict(extra="forbid")
    entries: list[str] = Field(min_length=1, max_length=500)


def _version(v: AgentVersion, *, definition: bool = False) -> VersionOut:
    return VersionOut.model_validate(v.to_dict(with_definition=definition))


def _summary(s: AgentSummary) -> SummaryOut:
    return SummaryOut.model_validate(s.to_dict())


def _pool(view: PoolView) -> PoolOut:
    return PoolOut.model_validate(view.to_dict())


def _registry(call: Call[Any, Any]) -> AgentRegistry:
    """The registry over the server's database, auditing into its audit log and asking
    the policies in force (rebuilt on reloads) before every change."""
    accounting = call.ctx.accounting()
    authorizer = call.ctx.authorizer
    engine = (
        authorizer.engine()
        if isinstance(authorizer, PolicyAuthorizer)
        else PolicyEngine.from_config(call.ctx.current_config, audit=accounting.audit)
    )
    return AgentRegistry(accounting.store.db, audit=accounting.audit, policy=engine)


def _tree(registry: AgentRegistry) -> OrgTree:
    tree = load_org(registry.database)
    if tree is None:
        raise UnknownUnit(
            "no organisation is stored, so no unit has a pool",
            hint="store it first: POST /api/v1/org/sync",
        )
    return tree


async def _list_agents(call: Call[AgentQuery, Any]) -> AgentList:
    q = call.query
    registry = _registry(call)
    summaries = await call.blocking(registry.summaries, served_only=not q.all)
    if q.q or q.category or q.tag:
        summaries = [h.summary for h in search(summaries, q.q, category=q.category, tag=q.tag)]
    items, next_offset = page_of(summaries, q)
    return AgentList(items=[_summary(s) for s in items], next_offset=next_offset)


async def _show_agent(call: Call[ShowQuery, Any]) -> AgentOut:
    registry = _registry(call)
    agent = call.path["agent"]
    versions = await call.blocking(registry.versions, agent)
    summary = registry.summary(agent)
    return AgentOut(
        agent=agent,
        served=summary.served.version if summary.served else None,
        warning=summary.warning,
        versions=[_version(v, definition=call.query.definition) for v in versions],
    )


async def _show_version(call: Call[Any, Any]) -> VersionOut:
    registry = _registry(call)
    found = await call.blocking(registry.version, call.path["agent"], call.path["version"])
    return _version(found, definition=True)


async def _diff_versions(call: Call[DiffQuery, Any]) -> DiffOut:
    registry = _registry(call)
    agent = call.path["agent"]
    old = await call.blocking(registry.version, agent, call.query.old)
    new = registry.version(agent, call.query.new)
    text = registry.diff(agent, old.version, new.version)
    return DiffOut(agent=agent, old=old.version, new=new.version, diff=text)


async def _publish_agent(call: Call[Any, PublishIn]) -> VersionOut:
    registry = _registry(call)
    principal = policy_principal(call.identity)
    published = await call.blocking(
        registry.publish, principal, call.body.definition, source="<api>"
    )
    return _version(published)


def _changer(verb: str) -> Any:
    async def change(call: Call[Any, ChangeIn]) -> VersionOut:
        registry = _registry(call)
        changed = await call.blocking(
            registry.change,
            verb,
            policy_principal(call.identity),
            call.path["agent"],
            call.path["version"],
            call.body.note,
        )
        return _version(changed)

    change.__name__ = f"_{verb}_version"
    return change


async def _show_pool(call: Call[Any, Any]) -> PoolOut:
    registry = _registry(call)
    tree = await call.blocking(_tree, registry)
    return _pool(UnitPools(registry, tree).view(call.path["unit"]))


async def _developer_pool(call: Call[Any, Any]) -> PoolOut:
    registry = _registry(call)
    tree = await call.blocking(_tree, registry)
    roster = await call.blocking(UnitPools(registry, tree).roster_for, call.path["developer"])
    return _pool(roster.view)


async def _set_pool(call: Call[Any, PoolIn]) -> PoolOut:
    unit = call.path["unit"]
    call.require("manage_agent_pool", call.ctx.directory.unit_path(unit))
    registry = _registry(call)
    tree = await call.blocking(_tree, registry)
    pools = UnitPools(registry, tree)
    view = await call.blocking(pools.set, policy_principal(call.identity), unit, call.body.entries)
    return _pool(view)


async def _clear_pool(call: Call[Any, Any]) -> PoolOut:
    unit = call.path["unit"]
    call.require("manage_agent_pool", call.ctx.directory.unit_path(unit))
    registry = _registry(call)
    tree = await call.blocking(_tree, registry)
    view = await call.blocking(
        UnitPools(registry, tree).clear, policy_principal(call.identity), unit
    )
    return _pool(view)


async def _seed_registry(call: Call[Any, Any]) -> SeedOut:
    result = await call.blocking(seed_builtins, _registry(call))
    return SeedOut(published=result.published, unchanged=result.unchanged)


_VERSION = "/registry/agents/{agent}/versions/{version}"

ENDPOINTS = [
    Endpoint(
        "GET",
        "/registry/agents",
        "read_registry",
        _list_agents,
        "Agents and the version each serves; q, category and tag search them",
        AgentList,
        query=AgentQuery,
        tag=TAG,
    ),
    Endpoint(
        "GET",
        "/registry/agents/{agent}",
        "read_registry",
        _show_agent,
        "An agent's versions and their provenance",
        AgentOut,
        query=ShowQuery,
        tag=TAG,
        statuses=READ_STATUSES,
    ),
    Endpoint(
        "GET",
        _VERSION,
        "read_registry",
        _show_version,
        "One version, with its definition",
        VersionOut,
        tag=TAG,
        statuses=READ_STATUSES,
    ),
    Endpoint(
        "GET",
        "/registry/agents/{agent}/diff",
        "read_registry",
        _diff_versions,
        "The unified diff between two versions",
        DiffOut,
        query=DiffQuery,
        tag=TAG,
        statuses=READ_STATUSES,
    ),
    Endpoint(
        "POST",
        "/registry/agents",
        "publish_agent",
        _publish_agent,
        "Publish a new version of an agent, pending a lead's or admin's review (audited)",
        VersionOut,
        body=PublishIn,
        status=201,
        tag=TAG,
        statuses=CHANGE_STATUSES,
    ),
    *[
        Endpoint(
            "POST",
            f"{_VERSION}/{verb}",
            action,
            _changer(verb),
            summary,
            VersionOut,
            body=ChangeIn,
            tag=TAG,
            statuses=CHANGE_STATUSES,
        )
        for verb, action, summary in (
            ("approve", "approve_agent", "Approve a pending version: it is served (audited)"),
            ("reject", "approve_agent", "Reject a pending version: never served (audited)"),
            ("deprecate", "deprecate_agent", "Deprecate: still served, with a warning"),
            ("yank", "yank_agent", "Yank a version: never served again (audited)"),
        )
    ],
    Endpoint(
        "GET",
        "/registry/pools/{unit}",
        "read_registry",
        _show_pool,
        "The agents a unit may use (the organisation's name: the top)",
        PoolOut,
        tag=TAG,
        statuses=READ_STATUSES,
    ),
    Endpoint(
        "PUT",
        "/registry/pools/{unit}",
        "manage_agent_pool",
        _set_pool,
        "Give a unit its own pool, narrowing its parent's (audited)",
        PoolOut,
        body=PoolIn,
        tag=TAG,
        statuses=CHANGE_STATUSES,
    ),
    Endpoint(
        "DELETE",
        "/registry/pools/{unit}",
        "manage_agent_pool",
        _clear_pool,
        "Remove a unit's own pool: it inherits again (audited)",
        PoolOut,
        tag=TAG,
        statuses=CHANGE_STATUSES,
    ),
    Endpoint(
        "GET",
        "/registry/developers/{developer}/pool",
        "read_registry",
        _developer_pool,
        "The agents a developer may use (their unit's pool)",
        PoolOut,
        tag=TAG,
        statuses=READ_STATUSES,
    ),
    Endpoint(
        "POST",
        "/registry/seed",
        "seed_registry",
        _seed_registry,
        "Publish and approve the built-in agents as the official publisher (audited)",
        SeedOut,
        tag=TAG,
        statuses=CHANGE_STATUSES,
    ),
]
