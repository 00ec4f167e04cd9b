"""Organisation changes, audited: the stored organisation and its audit entry commit together."""

from __future__ import annotations

from orchestra.accounting.audit import AuditLog
from orchestra.org import OrgTree, SyncResult, sync_org_session


def sync_org_audited(audit: AuditLog, tree: OrgTree, *, actor: str) -> SyncResult:
    """Store ``tree`` as the organisation and, when anything changed, audit it as
    ``org.sync`` by ``actor`` in the same transaction (nothing is half-applied)."""
    with audit.transaction() as tx:
        with tx.session() as session:
            result = sync_org_session(session, tree)
        if result.changed:
            tx.append(
                actor,
                "org.sync",
                tree.name,
                {"added": result.added, "updated": result.updated, "removed": result.removed},
            )
    return result
