"""The audit log of management actions, hash-chained so tampering shows.

Each entry stores the hash of the previous one and its own hash over (sequence, time,
actor, action, target, details, previous hash). Changing an entry breaks its own hash;
removing one breaks the next entry's link or the sequence; removing the newest entries
is caught by the head row (last sequence and hash) updated in the same transaction.

The head row lives in the same database, so someone who can delete rows can delete the
newest entries *and* the head, or rewrite the head to match. Two anchors outside the
database catch that:

* the **checkpoint file** every process that appends keeps under the state folder
  (``<home>/audit-checkpoints/<database digest>.json``), advanced after each commit;
* an **exported anchor** (``orchestra audit anchor``): the head at some moment, kept by
  the admin elsewhere and given back to ``orchestra audit verify --anchor FILE``.

An anchor says "entry N had hash H": a chain shorter than N, or whose entry N differs,
was truncated or rewritten. What the anchors cannot see is the part of the chain written
after they were taken.

An action and its audit entry commit in one transaction (:meth:`AuditLog.transaction`):
if the entry cannot be written (for instance because the head row was removed), the
action fails too, with :class:`AuditChainBroken`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.orm import Session

from orchestra.accounting.errors import AccountingError
from orchestra.accounting.store import AccountingStore, Clock, as_utc, utcnow
from orchestra.config.paths import orchestra_home
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayAuditEntry, GatewayAuditHead

GENESIS = "0" * 64
_HEAD_ID = 1
NOTIFY_CHANNEL = "orchestra_audit"
"""PostgreSQL channel notified (with the new sequence number) by every committed entry."""
CHECKPOINT_DIR = "audit-checkpoints"

log = logging.getLogger("orchestra.accounting")


class AuditChainBroken(AccountingError):
    """The audit log cannot take a new entry: its head was removed or does not match."""

    status = 409
    error_type = "api_error"


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


def database_digest(db: Database) -> str:
    """A short, stable name for a database (its URL without password, hashed)."""
    url = db.engine.url.render_as_string(hide_password=True)
    return hashlib.sha256(url.encode()).hexdigest()[:12]


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
class AuditAnchor:
    """A point of the chain recorded outside the database: entry ``seq`` had hash ``hash``."""

    seq: int
    hash: str
    at: datetime | None = None
    """When the entry was written (informational)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form written to anchor and checkpoint files."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at.isoformat() if self.at is not None else None,
        }

    @classmethod
    def read(cls, path: Path) -> AuditAnchor:
        """Read an anchor file; raises :class:`AuditChainBroken` when it is unusable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            seq, digest = int(data["seq"]), str(data["hash"])
            at = datetime.fromisoformat(data["at"]) if data.get("at") else None
        except FileNotFoundError as exc:
            raise AuditChainBroken(
                f"no audit anchor file at {path}",
                hint="give the file written by `orchestra audit anchor --output FILE`",
            ) from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditChainBroken(
                f"{path} is not an audit anchor file",
                hint="give the file written by `orchestra audit anchor --output FILE`",
            ) from exc
        if seq < 0 or len(digest) != 64:
            raise AuditChainBroken(
                f"{path} is not an audit anchor file (bad sequence or hash)",
                hint="give the file written by `orchestra audit anchor --output FILE`",
            )
        return cls(seq, digest, at)

    def write(self, path: Path) -> None:
        """Write atomically (a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


class AuditCheckpoint:
    """The newest head this machine saw committed, in a file beside the database.

    Only ever moves forward: several processes may advance it at once (a file lock
    serialises them), and an older head never overwrites a newer one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> AuditAnchor | None:
        """The checkpoint, or ``None`` when none was written yet."""
        if not self.path.exists():
            return None
        return AuditAnchor.read(self.path)

    def advance(self, anchor: AuditAnchor) -> None:
        """Record ``anchor`` unless the file already holds a newer head."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = self.read()
            except AuditChainBroken:
                current = None  # unreadable: replace it with a good one
            if current is None or current.seq < anchor.seq:
                anchor.write(self.path)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking the chain."""

    ok: bool
    checked: int
    first_bad_index: int | None = None
    """Sequence number of the first entry that is changed or missing (``None`` if ok)."""
    reason: str = ""
    anchors: tuple[str, ...] = ()
    """The anchors outside the database the chain was checked against (checkpoint, file)."""
    head_lost: bool = False
    """The entries and anchors are fine; only the head row is gone (see ``reseal``)."""


@dataclass
class AuditTransaction:
    """A write transaction in which an action and its audit entries commit together.

    Run the action's statements on :attr:`conn` and record it with :meth:`append`.
    """

    log: AuditLog
    conn: Connection
    entries: list[AuditEntry] = field(default_factory=list)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session inside this transaction, flushed when the block ends (it commits,
        or rolls back, with the transaction)."""
        with Session(bind=self.conn) as session:
            yield session
            session.flush()

    def append(
        self, actor: str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Add the entry in this transaction; raises :class:`AuditChainBroken` if impossible."""
        entry = self.log._append(self.conn, actor, action, target, details)
        self.entries.append(entry)
        return entry


class AuditLog:
    """Append and verify hash-chained management records.

    ``checkpoint``: the file this log advances after each commit and checks when
    verifying; by default ``<home>/audit-checkpoints/<database digest>.json``.
    """

    def __init__(
        self,
        db: Database | AccountingStore,
        *,
        clock: Clock = utcnow,
        checkpoint: Path | None = None,
        home: Path | None = None,
    ) -> None:
        self._store = AccountingStore.of(db)
        self._clock = clock
        path = checkpoint or (
            (home or orchestra_home()) / CHECKPOINT_DIR / f"{database_digest(self._store.db)}.json"
        )
        self.checkpoint = AuditCheckpoint(path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[AuditTransaction]:
        """A write transaction: the action's statements and its entries commit together."""
        with self._store.write_engine.begin() as conn:
            tx = AuditTransaction(self, conn)
            yield tx
        if tx.entries:
            self._committed(tx.entries[-1])

    def append(
        self, actor: str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Record one action on its own; returns the stored entry once committed."""
        with self.transaction() as tx:
            return tx.append(actor, action, target, details)

    def _committed(self, entry: AuditEntry) -> None:
        try:
            self.checkpoint.advance(AuditAnchor(entry.seq, entry.hash, entry.at))
        except OSError as exc:  # the entry is committed; a missing checkpoint is logged
            log.warning("cannot write the audit checkpoint %s: %s", self.checkpoint.path, exc)

    def _append(
        self,
        conn: Connection,
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any] | None,
    ) -> AuditEntry:
        text_ = json.dumps(details or {}, sort_keys=True, default=str, separators=(",", ":"))
        head_q = select(GatewayAuditHead.last_seq, GatewayAuditHead.last_hash).where(
            GatewayAuditHead.id == _HEAD_ID
        )
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            head_q = head_q.with_for_update()
        head = conn.execute(head_q).first()
        if head is None:
            # Create it. SQLite holds the write lock already (BEGIN IMMEDIATE); on
            # PostgreSQL a concurrent first append makes this insert wait for it, and the
            # read after it then sees that append's head.
            if postgres:
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                conn.execute(
                    pg_insert(GatewayAuditHead)
                    .values(id=_HEAD_ID, last_seq=0, last_hash=GENESIS)
                    .on_conflict_do_nothing()
                )
                head = conn.execute(head_q).first()
            else:
                conn.execute(
                    insert(GatewayAuditHead).values(id=_HEAD_ID, last_seq=0, last_hash=GENESIS)
                )
            newest = conn.execute(select(func.max(GatewayAuditEntry.seq))).scalar()
            if (head is None or int(head[0]) == 0) and newest is not None:
                raise AuditChainBroken(
                    f"the audit log's head row is missing while entry {newest} exists "
                    "(someone removed it): the action was not done",
                    hint="run `orchestra audit verify` to see what was removed; restore the "
                    "database from a backup, or accept the chain as it is with "
                    "`orchestra audit reseal`",
                )
        last_seq, prev = (int(head[0]), str(head[1])) if head is not None else (0, GENESIS)
        seq = last_seq + 1
        at = self._clock()
        digest = entry_hash(seq, at, actor, action, target, text_, prev)
        conn.execute(
            insert(GatewayAuditEntry).values(
                seq=seq,
                at=at,
                actor=actor,
                action=action,
                target=target,
                details=text_,
                prev_hash=prev,
                entry_hash=digest,
            )
        )
        conn.execute(
            update(GatewayAuditHead)
            .where(GatewayAuditHead.id == _HEAD_ID)
            .values(last_seq=seq, last_hash=digest)
        )
        if postgres:  # delivered at commit: other processes drop their key caches
            conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": NOTIFY_CHANNEL, "p": str(seq)})
        return AuditEntry(seq, at, actor, action, target, json.loads(text_), prev, digest)

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

    def head(self) -> AuditAnchor:
        """The newest entry as an anchor to keep outside the database (seq 0: empty log)."""
        with self._store.db.engine.connect() as conn:
            row = conn.execute(
                select(GatewayAuditEntry.seq, GatewayAuditEntry.entry_hash, GatewayAuditEntry.at)
                .order_by(GatewayAuditEntry.seq.desc())
                .limit(1)
            ).first()
        if row is None:
            return AuditAnchor(0, GENESIS)
        return AuditAnchor(int(row[0]), str(row[1]), as_utc(row[2]))

    def verify(self, *, anchor: tuple[str, AuditAnchor] | None = None) -> VerifyResult:
        """Walk the chain from the first entry; report the first changed or missing one.

        Then check the head row, this log's checkpoint file (when there is one) and
        ``anchor`` (a name for messages, and the anchor), if given.
        """
        anchors: list[tuple[str, AuditAnchor]] = []
        saved = self.checkpoint.read()
        if saved is not None:
            anchors.append((f"the checkpoint {self.checkpoint.path}", saved))
        if anchor is not None:
            anchors.append(anchor)
        names = tuple(name for name, _ in anchors)
        wanted = {a.seq for _, a in anchors}
        seen: dict[int, str] = {0: GENESIS}
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
                if r.seq in wanted:
                    seen[r.seq] = r.entry_hash
                prev = r.entry_hash
                expected += 1
            head = conn.execute(
                select(GatewayAuditHead.last_seq, GatewayAuditHead.last_hash).where(
                    GatewayAuditHead.id == _HEAD_ID
                )
            ).first()
        checked = expected - 1
        for name, point in anchors:
            if point.seq > checked:
                return VerifyResult(
                    False,
                    checked,
                    checked + 1,
                    f"the log ends at entry {checked} but {name} records entry {point.seq}: "
                    "the newest entries were removed",
                    names,
                )
            if seen.get(point.seq) != point.hash:
                return VerifyResult(
                    False,
                    checked,
                    point.seq,
                    f"entry {point.seq} differs from {name}: the chain was rewritten",
                    names,
                )
        if head is None and checked > 0:
            return VerifyResult(
                False,
                checked,
                checked + 1,
                f"the log ends at entry {checked} but its head row is missing (removed)",
                names,
                head_lost=True,
            )
        if head is not None and (int(head[0]) != checked or head[1] != prev):
            return VerifyResult(
                False,
                checked,
                checked + 1,
                f"the log ends at entry {checked} but the head records entry {head[0]}: "
                "the newest entries were removed",
                names,
            )
        return VerifyResult(True, checked, anchors=names)

    def reseal(
        self, actor: str, *, anchor: tuple[str, AuditAnchor] | None = None
    ) -> AuditEntry | None:
        """Accept the chain as it is after its head row was lost: rebuild the head from the
        newest entry and record that in an ``audit.reseal`` entry (``None``: nothing to do).

        Refused unless the entries verify and no anchor outside the database (checkpoint,
        ``anchor``) records a longer or different chain: removed entries are never
        silently accepted.
        """
        result = self.verify(anchor=anchor)
        if result.ok:
            return None
        if not result.head_lost:
            raise AuditChainBroken(
                f"the audit log cannot be resealed: {result.reason}",
                hint="restore the database from a backup; a reseal only repairs a lost head",
            )
        with self._store.write_engine.begin() as conn:
            newest = conn.execute(
                select(GatewayAuditEntry.seq, GatewayAuditEntry.entry_hash)
                .order_by(GatewayAuditEntry.seq.desc())
                .limit(1)
            ).first()
            present = conn.execute(
                select(GatewayAuditHead.id).where(GatewayAuditHead.id == _HEAD_ID)
            ).first()
            if present is None and newest is not None:
                conn.execute(
                    insert(GatewayAuditHead).values(
                        id=_HEAD_ID, last_seq=int(newest[0]), last_hash=str(newest[1])
                    )
                )
            entry = AuditTransaction(self, conn).append(
                actor, "audit.reseal", "head", {"rebuilt_at_entry": result.checked}
            )
        self._committed(entry)
        return entry
