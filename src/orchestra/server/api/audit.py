"""``/api/v1/audit``: the hash-chained audit log (read, verify, reseal)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestra.accounting import AuditEntry
from orchestra.server.api.endpoint import Call, Endpoint


class AuditEntryOut(BaseModel):
    """One management action."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    hash: str


class AuditList(BaseModel):
    """A page of entries, newest first."""

    items: list[AuditEntryOut]
    next_offset: int | None


class AuditQuery(BaseModel):
    """Which entries: ``limit`` from ``offset`` (newest first), optionally by action prefix."""

    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    action: str | None = Field(default=None, max_length=100)


class VerifyOut(BaseModel):
    """Whether the chain is intact."""

    ok: bool
    checked: int
    first_bad_index: int | None
    reason: str
    head_lost: bool


class ResealOut(BaseModel):
    """The entry recording a reseal (``null``: the log was intact)."""

    entry: AuditEntryOut | None


def _out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        details=entry.details,
        hash=entry.hash,
    )


async def _list_audit(call: Call[AuditQuery, Any]) -> AuditList:
    q = call.query
    log = call.ctx.accounting().audit
    rows = await call.blocking(log.list, limit=q.offset + q.limit + 1, action=q.action)
    items = rows[q.offset : q.offset + q.limit]
    more = len(rows) > q.offset + q.limit
    return AuditList(
        items=[_out(e) for e in items], next_offset=q.offset + q.limit if more else None
    )


async def _verify_audit(call: Call[Any, Any]) -> VerifyOut:
    result = await call.blocking(call.ctx.accounting().audit.verify)
    return VerifyOut(
        ok=result.ok,
        checked=result.checked,
        first_bad_index=result.first_bad_index,
        reason=result.reason,
        head_lost=result.head_lost,
    )


async def _reseal_audit(call: Call[Any, Any]) -> ResealOut:
    entry = await call.blocking(call.ctx.accounting().audit.reseal, call.identity.actor)
    return ResealOut(entry=_out(entry) if entry is not None else None)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/audit",
        "read_audit",
        _list_audit,
        "Audit entries, newest first",
        AuditList,
        query=AuditQuery,
        tag="audit",
    ),
    Endpoint(
        "GET",
        "/audit/verify",
        "read_audit",
        _verify_audit,
        "Check the hash chain and its anchors",
        VerifyOut,
        tag="audit",
    ),
    Endpoint(
        "POST",
        "/audit/reseal",
        "manage_audit",
        _reseal_audit,
        "Rebuild a lost head row from the newest entry (audited)",
        ResealOut,
        tag="audit",
        statuses=(400, 401, 403, 409),
    ),
]
