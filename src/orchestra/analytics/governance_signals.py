"""Governance signals for maturity: policy compliance (from the policy decisions the audit
log and the ledger record) and registry use (runs whose agents the registry approved, and
units with an agent pool). Each is a measured :class:`Signal` with its rows, or unknown
with the reason."""

from __future__ import annotations

import json
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestra.analytics.dataset import Dataset
from orchestra.analytics.scope import Scope
from orchestra.analytics.signals import Signal
from orchestra.org import OrgTree
from orchestra.store.tables.engine import StepRow
from orchestra.store.tables.gateway import GatewayAuditEntry
from orchestra.store.tables.registry import RegistryPool, RegistryVersion

SERVED_STATES = ("approved", "deprecated")
"""Registry states whose version was approved and may still be served."""
POLICY_ACTIONS = ("policy.permit", "policy.deny")
CALL = "call_model "
"""How the gateway's audited refusals of model calls name their target."""


def _developer_of(actor: str) -> str | None:
    kind, _, name = actor.partition(":")
    return name if kind == "developer" and name else None


def _decisions(session: Session, scope: Scope, data: Dataset) -> list[tuple[int, str, str]]:
    """(seq, action, target) of the unit's audited policy decisions in the period."""
    rows = session.execute(
        select(
            GatewayAuditEntry.seq,
            GatewayAuditEntry.action,
            GatewayAuditEntry.target,
            GatewayAuditEntry.actor,
            GatewayAuditEntry.details,
        ).where(
            GatewayAuditEntry.action.in_(POLICY_ACTIONS),
            GatewayAuditEntry.at >= data.period.start,
            GatewayAuditEntry.at < data.period.end,
        )
    )
    found = []
    for seq, action, target, actor, details in rows:
        try:
            principal = str(json.loads(details).get("principal") or actor)
        except (ValueError, AttributeError):
            principal = actor
        who = _developer_of(principal)
        if scope.is_organisation or (who is not None and who in scope.developers):
            found.append((int(seq), str(action), str(target)))
    return found


def policy_signal(session: Session, scope: Scope, data: Dataset) -> Signal:
    """Permitted policy decisions ÷ decisions, over the unit's model calls (each ledger row
    is a call the policies let through; a refused call is audited ``policy.deny``) and its
    audited actions (counted only when permits of actions are audited, with
    ``policies.audit_permits``; refusals alone would say nothing of the permits)."""
    decisions = _decisions(session, scope, data)
    call_denies = [d for d in decisions if d[1] == "policy.deny" and d[2].startswith(CALL)]
    action_permits = [d for d in decisions if d[1] == "policy.permit"]
    action_denies = [d for d in decisions if d[1] == "policy.deny" and not d[2].startswith(CALL)]
    how = (
        "permitted ÷ decided: model calls let through (ledger rows) and, when permits of "
        "actions are audited, permitted actions, ÷ those plus the audited refusals"
    )
    if not action_permits:
        how += " (no permit of an action is audited in the period: actions not counted)"
        action_denies = []
    permitted = data.ledger_rows + len(action_permits)
    total = permitted + len(call_denies) + len(action_denies)
    if total == 0:
        return Signal(
            "policy_compliance",
            None,
            how,
            unknown="no model call and no audited policy decision of the unit in the period",
        )
    audited = [f"audit:{seq}" for seq, _, _ in (*call_denies, *action_permits, *action_denies)]
    rows = (*audited, *(f"ledger:{i}" for i in data.ledger_ids))
    return Signal("policy_compliance", permitted / total, how, rows, total)


def _approved(session: Session) -> set[str]:
    return set(
        session.scalars(
            select(RegistryVersion.agent).where(RegistryVersion.state.in_(SERVED_STATES))
        )
    )


def registry_use_signal(session: Session, data: Dataset) -> Signal:
    """Runs finished in the period whose every agent has an approved version in the
    registry ÷ runs finished in the period that ran an agent."""
    how = (
        "runs finished in the period whose every agent step used an agent with an approved "
        "(or deprecated, still served) version in the registry ÷ runs that ran an agent"
    )
    finished = [r.id for r in data.runs.values() if data.period.contains(r.finished_at)]
    agents: dict[str, set[str]] = defaultdict(set)
    for start in range(0, len(finished), 500):
        chunk = finished[start : start + 500]
        for run_id, agent in session.execute(
            select(StepRow.run_id, StepRow.agent).where(StepRow.run_id.in_(chunk))
        ):
            agents[str(run_id)].add(str(agent))
    if not agents:
        return Signal(
            "registry_use", None, how, unknown="no run of the unit ran an agent in the period"
        )
    approved = _approved(session)
    if not approved:
        return Signal(
            "registry_use", None, how, unknown="the agent registry has no approved agent yet"
        )
    hits = [r for r, used in agents.items() if used <= approved]
    rows = tuple(f"run:{r}" for r in sorted(agents))
    return Signal("registry_use", len(hits) / len(agents), how, rows, len(rows))


def registry_pools_signal(session: Session, tree: OrgTree, units: set[str]) -> Signal:
    """Squads of the unit whose agent pool is defined (theirs, a unit's above, or the
    organisation's) ÷ squads."""
    how = (
        "squads with an agent pool in the registry (their own, inherited from a unit above, "
        "or the organisation's) ÷ squads"
    )
    squads = [u for u in tree.units if u.kind == "squad" and u.name in units]
    if not squads:
        return Signal("registry_pools", None, how, unknown="the unit has no squad")
    pools = set(session.scalars(select(RegistryPool.unit)))
    covered = []
    for squad in squads:
        chain, current = [tree.name], tree.unit(squad.name)
        while current is not None and current.name not in chain:
            chain.append(current.name)
            current = tree.unit(current.parent) if current.parent else None
        if pools & set(chain):
            covered.append(squad.name)
    rows = tuple(f"unit:{s.name}" for s in squads)
    return Signal("registry_pools", len(covered) / len(squads), how, rows, len(rows))
