"""The audit log of management actions, hash-chained so tampering shows.

Each entry stores the hash of the previous one and its own hash over (sequence, time,
actor, action, target, details, previous hash). Changing an entry breaks its own hash;
removing one breaks the next entry's link or the sequence; removing the newest entries
is caught by the head row (last sequence and hash) updated in the same transaction.
Someone with write access to the database can still rewrite the whole chain and the head
consistently: the chain proves integrity against edits, not against a full rewrite
(export the head hash elsewhere to anchor it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from orchestra.accounting.store import AccountingStore, Clock, as_utc, utcnow
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayAuditEntry, GatewayAuditHead

GENESIS = "0" * 64
_HEAD_ID = 1


def entry_hash(
    seq: int, at: datetime, actor: str, action: str, target: str, details: str, prev_hash: str
) -> str:
    """The hash an entry with these fields must carry."""
    payload = json.dumps(
        [seq, as_utc(at).isoformat(), actor, action, target, details, prev_hash],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One management action."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking the chain."""

    ok: bool
    checked: int
    first_bad_index: int | None = None
    """Sequence number of the first entry that is changed or missing (``None`` if ok)."""
    reason: str = ""


class AuditLog:
    """Append and verify hash-chained management records."""

    def __init__(self, db: Database | AccountingStore, *, clock: Clock = utcnow) -> None:
        self._store = AccountingStore.of(db)
        self._clock = clock

    def append(
        self, actor: str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Record one action; returns the stored entry once committed."""
        text = json.dumps(details or {}, sort_keys=True, default=str, separators=(",", ":"))
        with self._store.write_engine.begin() as conn:
            return self._append(conn, actor, action, target, text)

    def _append(
        self, conn: Connection, actor: str, action: str, target: str, text: str
    ) -> AuditEntry:
        head_q = select(GatewayAuditHead.last_seq, GatewayAuditHead.last_hash).where(
            GatewayAuditHead.id == _HEAD_ID
        )
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(
                pg_insert(GatewayAuditHead)
                .values(id=_HEAD_ID, last_seq=0, last_hash=GENESIS)
                .on_conflict_do_nothing()
            )
            head_q = head_q.with_for_update()
        head = conn.execute(head_q).first()
        if head is None:  # SQLite: the write lock is already ours (BEGIN IMMEDIATE)
            conn.execute(
                insert(GatewayAuditHead).values(id=_HEAD_ID, last_seq=0, last_hash=GENESIS)
            )
            last_seq, prev = 0, GENESIS
        else:
            last_seq, prev = int(head[0]), str(head[1])
        seq = last_seq + 1
        at = self._clock()
        digest = entry_hash(seq, at, actor, action, target, text, prev)
        conn.execute(
            insert(GatewayAuditEntry).values(
                seq=seq,
                at=at,
                actor=actor,
                action=action,
                target=target,
                details=text,
                prev_hash=prev,
                entry_hash=digest,
            )
        )
        conn.execute(
            update(GatewayAuditHead)
            .where(GatewayAuditHead.id == _HEAD_ID)
            .values(last_seq=seq, last_hash=digest)
        )
        return AuditEntry(seq, at, actor, action, target, json.loads(text), prev, digest)

    def list(self, *, limit: int | None = None, action: str | None = None) -> list[AuditEntry]:
        """Entries, newest first (optionally only actions starting with ``action``)."""
        query = select(GatewayAuditEntry).order_by(GatewayAuditEntry.seq.desc())
        if action:
            query = query.where(GatewayAuditEntry.action.startswith(action))
        if limit:
            query = query.limit(limit)
        with self._store.db.session() as session:
            return [
                AuditEntry(
                    r.seq,
                    as_utc(r.at),
                    r.actor,
                    r.action,
                    r.target,
                    json.loads(r.details),
                    r.prev_hash,
                    r.entry_hash,
                )
                for r in session.scalars(query)
            ]

    def verify(self) -> VerifyResult:
        """Walk the chain from the first entry; report the first changed or missing one."""
        prev = GENESIS
        expected = 1
        with self._store.db.engine.connect() as conn:
            rows = conn.execute(select(GatewayAuditEntry).order_by(GatewayAuditEntry.seq))
            for r in rows:
                if r.seq != expected:
                    return VerifyResult(
                        False, expected - 1, expected, f"entry {expected} is missing (removed)"
                    )
                if r.prev_hash != prev:
                    return VerifyResult(
                        False,
                        expected - 1,
                        r.seq,
                        f"entry {r.seq} does not link to entry {r.seq - 1} "
                        "(an entry was changed or removed)",
                    )
                digest = entry_hash(
                    r.seq, r.at, r.actor, r.action, r.target, r.details, r.prev_hash
                )
                if digest != r.entry_hash:
                    return VerifyResult(
                        False,
                        expected - 1,
                        r.seq,
                        f"entry {r.seq} was changed after it was written",
                    )
                prev = r.entry_hash
                expected += 1
            head = conn.execute(
                select(GatewayAuditHead.last_seq, GatewayAuditHead.last_hash).where(
                    GatewayAuditHead.id == _HEAD_ID
                )
            ).first()
        checked = expected - 1
        if head is not None and (int(head[0]) != checked or head[1] != prev):
            return VerifyResult(
                False,
                checked,
                checked + 1,
                f"the log ends at entry {checked} but the head records entry {head[0]}: "
                "the newest entries were removed",
            )
        return VerifyResult(True, checked)
