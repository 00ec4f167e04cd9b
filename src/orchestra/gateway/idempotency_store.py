"""Where the gateway keeps ``Idempotency-Key``\\ s: one row per (account, key) in the
database every replica shares (``gateway_idempotency_keys``).

A call claims its key (``in_flight``, with a lease its replica renews), then either stores
its answer (``done``) or gives the key back (an error answer, a failure). A repeat finds
the answer, or the call still in flight, or a body that differs; a key whose lease ran out
(its replica died) is taken over. Expired keys count as absent and are pruned.

Blocking (SQLAlchemy): the gateway calls it on its worker threads.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import Engine, Table, and_, create_engine, delete, insert, select, update
from sqlalchemy.pool import StaticPool

from orchestra.store.tables.idempotency import IdempotencyKeyRow

_TABLE = cast(Table, IdempotencyKeyRow.__table__)
IN_FLIGHT = "in_flight"
DONE = "done"
PRUNE_EVERY_S = 300.0
"""At most one prune of expired keys per this many seconds, per replica."""


@dataclass(frozen=True)
class StoredAnswer:
    """The answer kept for a key: what a repeat is sent, byte for byte."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    request_id: str | None = None


@dataclass(frozen=True)
class Claim:
    """What a call found for its key.

    ``owner``: it holds the key and makes the call (``took_over``: from a replica whose
    lease ran out); ``done``: :attr:`answer` is the stored one; ``busy``: the same call is
    in flight elsewhere; ``mismatch``: the key was used with another body.
    """

    kind: Literal["owner", "done", "busy", "mismatch"]
    answer: StoredAnswer | None = None
    took_over: bool = False


def owner_name() -> str:
    """A new owner for one call: ``host:pid:token``."""
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_gone(owner: str) -> bool:
    """Whether ``owner``'s process is known to be dead: another process on this host
    that no longer exists. (On another host only its lease running out says so.)"""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, not ours to signal
    return False


class IdempotencyStore:
    """Idempotency keys in ``engine``'s database (migrated: ``idempotency_0001``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.time,
        gone: Callable[[str], bool] = owner_gone,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.gone = gone
        """Whether a key's owner is known dead before its lease runs out."""
        self._pruned_at = 0.0

    @classmethod
    def in_memory(cls) -> IdempotencyStore:
        """A store of this process only (an embedded gateway without a database)."""
        engine = create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
        _TABLE.create(engine)
        return cls(engine)

    def _insert(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(_TABLE).on_conflict_do_nothing()
        if self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(_TABLE).on_conflict_do_nothing()
        return insert(_TABLE)  # pragma: no cover - other databases are not supported

    def claim(
        self, account: str, key: str, digest: str, owner: str, *, lease_s: float, ttl_s: float
    ) -> Claim:
        """Claim ``key`` for a call whose body hashes to ``digest``, or say why not."""
        self._maybe_prune()
        now = self.clock()
        fresh = {
            "account": account,
            "key": key,
            "request_hash": digest,
            "state": IN_FLIGHT,
            "owner": owner,
            "lease_until": now + lease_s,
            "created_at": now,
            "expires_at": now + ttl_s,
            "status": None,
            "headers": None,
            "body": None,
            "request_id": None,
        }
        where = and_(_TABLE.c.account == account, _TABLE.c.key == key)
        for _ in range(5):  # a row deleted or taken between two statements: look again
            with self.engine.begin() as conn:
                # RETURNING, not rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING.
                inserted = self._insert().values(fresh).returning(_TABLE.c.key)
                if conn.execute(inserted).first() is not None:
                    return Claim("owner")
                found = conn.execute(select(_TABLE).where(where)).first()
                if found is None:
                    continue
                if found.expires_at <= now:  # expired: as if absent
                    replaced = update(_TABLE).where(where, _TABLE.c.expires_at == found.expires_at)
                    if conn.execute(replaced.values(fresh)).rowcount == 1:
                        return Claim("owner")
                    continue
                return self._existing(conn, found, where, digest, owner, now + lease_s)
        return Claim("busy")

    def _existing(
        self, conn: Any, found: Any, where: Any, digest: str, owner: str, lease_until: float
    ) -> Claim:
        if found.request_hash != digest:
            return Claim("mismatch")
        if found.state == DONE:
            return Claim("done", _answer(found))
        if found.lease_until > self.clock() and not self.gone(found.owner):
            return Claim("busy")
        taken = conn.execute(
            update(_TABLE)
            .where(where, _TABLE.c.owner == found.owner, _TABLE.c.state == IN_FLIGHT)
            .values(owner=owner, lease_until=lease_until)
        )
        return Claim("owner", took_over=True) if taken.rowcount == 1 else Claim("busy")

    def renew(self, account: str, key: str, owner: str, lease_s: float) -> bool:
        """Extend ``owner``'s lease on ``key``; False when it no longer holds it."""
        with self.engine.begin() as conn:
            done = conn.execute(
                self._held(account, key, owner).values(lease_until=self.clock() + lease_s)
            )
            return bool(done.rowcount == 1)

    def complete(self, account: str, key: str, owner: str, answer: StoredAnswer) -> bool:
        """Keep ``answer`` under ``key``; False when ``owner`` lost the key meanwhile."""
        with self.engine.begin() as conn:
            done = conn.execute(
                self._held(account, key, owner).values(
                    state=DONE,
                    status=answer.status,
                    headers=json.dumps([list(h) for h in answer.headers]),
                    body=answer.body,
                    request_id=answer.request_id,
                )
            )
            return bool(done.rowcount == 1)

    def release(self, account: str, key: str, owner: str) -> None:
        """Give ``key`` back (the call failed): a repeat makes the call again."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(_TABLE).where(
                    _TABLE.c.account == account,
                    _TABLE.c.key == key,
                    _TABLE.c.owner == owner,
                    _TABLE.c.state == IN_FLIGHT,
                )
            )

    def _held(self, account: str, key: str, owner: str) -> Any:
        return update(_TABLE).where(
            _TABLE.c.account == account,
            _TABLE.c.key == key,
            _TABLE.c.owner == owner,
            _TABLE.c.state == IN_FLIGHT,
        )

    def prune(self) -> int:
        """Delete the keys past their expiry; returns how many."""
        with self.engine.begin() as conn:
            gone = conn.execute(delete(_TABLE).where(_TABLE.c.expires_at <= self.clock()))
            return int(gone.rowcount or 0)

    def _maybe_prune(self) -> None:
        now = self.clock()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            self.prune()


def _answer(row: Any) -> StoredAnswer:
    headers = [(str(n), str(v)) for n, v in json.loads(row.headers or "[]")]
    return StoredAnswer(int(row.status or 200), headers, bytes(row.body or b""), row.request_id)
