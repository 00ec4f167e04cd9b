"""The registry's side of the policy seam (``orchestra.policy``).

Every change asks ``PolicyEngine.require(principal, action, resource)``: a refusal is
audited by the engine (``policy.deny`` with the deciding policy ids) and raised as
:class:`~orchestra.policy.PolicyDenied` (HTTP 403). The actions the registry adds to the
Cedar schema are in ``policy/schema/registry.json``; the shipped rules (a developer cannot
approve; pools are set by their unit's lead or an admin) in ``policy/defaults/registry.cedar``.
"""

from __future__ import annotations

from orchestra.config.names import close_matches
from orchestra.org import OrgTree
from orchestra.policy import Principal, Resource
from orchestra.registry.errors import UnknownUnit

OFFICIAL_PUBLISHER = "orchestra"
"""The publisher of the built-in agents."""

REGISTRY_ACTIONS: dict[str, str] = {
    "publish": "publish_agent",
    "approve": "approve_agent",
    "reject": "approve_agent",
    "deprecate": "deprecate_agent",
    "yank": "yank_agent",
    "pool": "manage_agent_pool",
}
"""What the registry does -> the Cedar action it asks the policy engine about."""


def agent_resource(name: str, publisher: str | None = None, version: int | None = None) -> Resource:
    """The Cedar ``Agent`` entity for ``name`` (attributes as the schema declares them)."""
    attrs: dict[str, object] = {}
    if publisher is not None:
        attrs["publisher"] = publisher
    if version is not None:
        attrs["version"] = str(version)
    return Resource("Agent", name, attrs)


def unit_resource(tree: OrgTree, unit: str) -> Resource:
    """The Cedar entity of a unit (the organisation's name: the ``Organisation`` itself)."""
    return Resource("Organisation" if unit == tree.name else "Unit", unit)


def principal_for(tree: OrgTree | None, developer: str) -> Principal:
    """The principal of ``developer`` in the stored organisation (role, home unit).

    A lead is a lead of their home unit (and so, through the tree, of the units under it).
    """
    known = tree.developers if tree is not None else ()
    found = next((d for d in known if d.name == developer), None)
    if found is None:
        close = close_matches(developer, [d.name for d in known])
        raise UnknownUnit(
            f"the organisation has no developer named {developer!r}",
            hint=f"did you mean {', '.join(close)}?"
            if close
            else "add them to orchestra.yaml and run `orchestra org sync`",
        )
    lead_of = (found.unit,) if found.role == "lead" and found.unit else ()
    return Principal("developer", found.name, frozenset({found.role}), found.unit, lead_of)
