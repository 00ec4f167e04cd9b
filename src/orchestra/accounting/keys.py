"""Virtual API keys: created and shown once, stored as a keyed hash, revoked, rotated.

Why HMAC-SHA256 with a server-side pepper and not a password hash (bcrypt, argon2)? The
secrets are 256 random bits, not human passwords: no dictionary or brute-force attack is
feasible against them, so a deliberately slow hash would buy no security and would cost
milliseconds on every request. The pepper (a server secret kept outside the database)
means a stolen database alone does not even let an attacker test candidate keys.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import os
import secrets as _secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from orchestra.accounting.attribution import Attribution, OrgPath
from orchestra.accounting.audit import AuditLog
from orchestra.accounting.errors import InvalidKey, KeyNotFound, UnknownName
from orchestra.accounting.key_changes import KeyChanges
from orchestra.accounting.orgpath import OrgTableResolver
from orchestra.accounting.store import AccountingStore, Clock, as_utc, utcnow
from orchestra.config import OrgNames
from orchestra.config.paths import orchestra_home
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayKey

KEY_PREFIX = "orc_"
DISPLAY_PREFIX_LEN = 12
PEPPER_ENV = "ORCHESTRA_KEY_PEPPER"
PEPPER_FILE = "key-pepper"
RUN_KEY_PREFIX = "run:"
"""The name of a run's key is this prefix and the run id: its calls are charged to that run."""

OrgResolver = Callable[[str, str | None], OrgPath]
"""Maps ``(developer, team)`` to the organisation units the developer's calls belong to."""


def load_pepper(home: Path | None = None) -> bytes:
    """The hashing pepper: ``$ORCHESTRA_KEY_PEPPER``, else ``<home>/key-pepper`` (0600).

    The file is created on first use. Every gateway worker that shares a database must
    share the pepper (same home folder, or the environment variable).
    """
    env = os.environ.get(PEPPER_ENV)
    if env:
        return env.encode()
    path = (home or orchestra_home()) / PEPPER_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = _secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its pepper
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key, without its secret."""

    id: str
    prefix: str
    """The first characters of the secret, for display (``orc_AbCdEfGh``)."""
    developer: str
    team: str | None
    admin: bool
    name: str | None
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    """Set when the key was rotated: it keeps working until then."""
    replaced_by: str | None = None
    org: OrgPath = field(default_factory=OrgPath)
    """Organisation units above ``team``, resolved when the key is authenticated."""
    holder: str | None = None
    """The worker (executor id) holding a run's key (``None``: one process holds the run)."""

    def status(self, now: datetime) -> str:
        """``active``, ``rotating`` (old key in its grace period), ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None:
            return "rotating" if now < self.expires_at else "expired"
        return "active"

    def usable(self, now: datetime) -> bool:
        """Whether calls may use the key at ``now``: active, or rotating within its grace."""
        return self.status(now) in ("active", "rotating")

    @property
    def run_id(self) -> str | None:
        """The run a run key belongs to (``None`` for a developer's own key)."""
        if self.name is not None and self.name.startswith(RUN_KEY_PREFIX):
            return self.name[len(RUN_KEY_PREFIX) :]
        return None

    def attribution(self) -> Attribution:
        """The attribution of calls made with this key (agent/run/step added per call)."""
        return Attribution(
            org=self.org.org,
            division=self.org.division,
            tribe=self.org.tribe,
            squad=self.org.squad if self.org.squad is not None else self.team,
            developer=self.developer,
            key_id=self.id,
            run_id=self.run_id,
        )


@dataclass(frozen=True, slots=True)
class KeyHolding:
    """Which worker a run's new key is for, and whose keys of the run it replaces.

    On one process a run has one key, and a new one (a resume) revokes the others. Workers
    sharing a database can each hold part of a run: a reaper that recovers part of a dead
    worker's run while another worker already continues the rest. Each worker then holds
    its own key of the run, and opening one revokes only the keys it :meth:`fences`: this
    worker's earlier one, the dead workers' it recovers (``fence``; a zombie's calls are
    refused), and keys held by no worker. Every key of the run is revoked when it ends."""

    holder: str
    """This worker's executor id."""
    fence: tuple[str, ...] = ()
    """Executor ids of the dead workers whose keys of the run this one revokes."""

    def fences(self, holder: str | None) -> bool:
        """Whether opening this holding revokes a key of the run held by ``holder``."""
        return holder is None or holder == self.holder or holder in self.fence


def _record(row: Any) -> KeyRecord:
    """The record of a stored key (an ORM object or a row with the same columns)."""
    return KeyRecord(
        id=row.id,
        prefix=row.prefix,
        developer=row.developer,
        team=row.team,
        admin=row.admin,
        name=row.name,
        created_at=as_utc(row.created_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
        replaced_by=row.replaced_by,
        holder=row.holder,
    )


class KeyStore:
    """Create, authenticate, list, revoke and rotate virtual keys; management is audited.

    ``authenticate`` is on every request's path: lookups are cached in memory for
    ``cache_ttl_s`` (5 s by default), and only while the shared key-change counter
    (:meth:`version`) stays where it was when the key was read. So a revocation or
    rotation made anywhere (this process, the CLI, another worker or replica) takes
    effect on the next request. Each change commits in one transaction with its audit
    entry: when the entry cannot be written, the change is not made.
    """

    def __init__(
        self,
        db: Database | AccountingStore,
        *,
        pepper: bytes | None = None,
        audit: AuditLog | None = None,
        org_resolver: OrgResolver | None = None,
        names: OrgNames | None = None,
        clock: Clock = utcnow,
        cache_ttl_s: float = 5.0,
        home: Path | None = None,
    ) -> None:
        self._store = AccountingStore.of(db)
        self._home = home
        """The state folder holding the pepper file (default: :func:`orchestra_home`)."""
        self._pepper = pepper
        """Read (or created) on first use: listing keys needs no pepper."""
        self._audit = audit if audit is not None else AuditLog(self._store, clock=clock)
        self._resolve = org_resolver or OrgTableResolver(self._store.db)
        self._names = names
        """The organisation's names: keys for developers or teams outside it are refused."""
        self._clock = clock
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[float, int, KeyRecord]] = {}
        """Hash -> (monotonic expiry, key-change counter when read, record)."""
        self._lock = threading.Lock()
        self._changes = KeyChanges(self._store)

    def version(self) -> int:
        """The shared key-change counter: cached keys read under another value are stale."""
        return self._changes.current()

    def watch(self, timeout: float = 5.0) -> bool:
        """Start following key changes made elsewhere now rather than on the first request
        (PostgreSQL: the listener connects); whether they are followed within ``timeout``.
        Until they are, every lookup reads the database: nothing stale is served."""
        return self._changes.wait_ready(timeout)

    def close(self) -> None:
        """Stop watching for key changes (the listener thread on PostgreSQL)."""
        self._changes.close()

    def hash(self, secret: str) -> str:
        """The keyed hash stored for ``secret``."""
        if self._pepper is None:
            self._pepper = load_pepper(self._home)
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).hexdigest()

    def _with_org(self, record: KeyRecord) -> KeyRecord:
        return replace(record, org=self._resolve(record.developer, record.team))

    def _insert(
        self,
        developer: str,
        team: str | None,
        admin: bool,
        name: str | None,
        holder: str | None = None,
    ) -> tuple[str, GatewayKey]:
        secret = KEY_PREFIX + _secrets.token_urlsafe(32)
        row = GatewayKey(
            id="key_" + uuid.uuid4().hex[:16],
            prefix=secret[:DISPLAY_PREFIX_LEN],
            secret_hash=self.hash(secret),
            developer=developer,
            team=team,
            admin=admin,
            name=name,
            created_at=self._clock(),
            holder=holder,
        )
        return secret, row

    def create(
        self,
        developer: str,
        team: str | None = None,
        admin: bool = False,
        name: str | None = None,
        *,
        actor: str = "system",
    ) -> tuple[str, KeyRecord]:
        """Create a key; returns ``(secret, record)``. The secret is never stored or shown again."""
        if name is not None and name.startswith(RUN_KEY_PREFIX):
            raise InvalidKey(
                f"key names starting with {RUN_KEY_PREFIX!r} are reserved for pipeline runs",
                hint="choose another --name; runs get their keys from the engine",
            )
        return self._create(developer, team, admin, name, actor=actor)

    def create_for_run(
        self,
        developer: str,
        team: str | None,
        run_id: str,
        *,
        holder: str | None = None,
        actor: str = "system",
    ) -> tuple[str, KeyRecord]:
        """A key for one pipeline run of ``developer``: its calls are charged to the run
        (whatever run a request names) as well as to the developer and their team.
        ``holder`` names the worker holding it (see :class:`KeyHolding`)."""
        name = RUN_KEY_PREFIX + run_id
        return self._create(developer, team, False, name, holder=holder, actor=actor)

    def run_keys(self, run_id: str) -> builtins.list[KeyRecord]:
        """The keys (active or not) of the run ``run_id``, oldest first."""
        with self._store.db.session() as session:
            query = (
                select(GatewayKey)
                .where(GatewayKey.name == RUN_KEY_PREFIX + run_id)
                .order_by(GatewayKey.created_at, GatewayKey.id)
            )
            return [_record(r) for r in session.scalars(query)]

    def revoke_run(
        self, run_id: str, *, actor: str = "system", holding: KeyHolding | None = None
    ) -> int:
        """Revoke the keys of the run ``run_id`` still usable (with ``holding``, only those
        it fences off); returns how many."""
        now = self._clock()
        revoked = 0
        for record in self.run_keys(run_id):
            if record.usable(now) and (holding is None or holding.fences(record.holder)):
                self.revoke(record.id, actor=actor)
                revoked += 1
        return revoked

    def _create(
        self,
        developer: str,
        team: str | None,
        admin: bool,
        name: str | None,
        *,
        actor: str,
        holder: str | None = None,
    ) -> tuple[str, KeyRecord]:
        developer = developer.strip()
        if not developer:
            raise InvalidKey("a key needs a developer", hint="pass --developer NAME")
        self._check_names(developer, team)
        secret, row = self._insert(developer, team, admin, name, holder)
        record = _record(row)
        with self._audit.transaction() as tx:
            tx.conn.execute(insert(GatewayKey).values(**_columns(row)))
            tx.append(
                actor,
                "key.create",
                record.id,
                {
                    "developer": developer,
                    "team": team,
                    "admin": admin,
                    "name": name,
                    "prefix": record.prefix,
                },
            )
        return secret, self._with_org(record)

    def _check_names(self, developer: str, team: str | None) -> None:
        if self._names is None:
            return
        why = self._names.unknown_developer(developer) or (
            self._names.unknown_unit(team) if team is not None else None
        )
        if why is not None:
            raise UnknownName(
                f"no key created: {why}",
                hint="use a name from orchestra.yaml's organisation (`orchestra org show`), "
                "or add it there and run `orchestra org sync`",
            )

    def authenticate(self, secret: str) -> KeyRecord | None:
        """The usable key for ``secret``, or ``None`` (unknown, revoked, grace period over)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
            return None
        digest = self.hash(secret)
        now_mono = time.monotonic()
        version = self._changes.current()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now_mono and cached[1] == version:
            record = cached[2]
        else:
            with self._store.db.session() as session:
                row = session.scalars(
                    select(GatewayKey).where(GatewayKey.secret_hash == digest)
                ).first()
                if row is None:
                    return None
                record = self._with_org(_record(row))
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now_mono + self._ttl, version, record)
        return record if record.usable(self._clock()) else None

    def require(self, secret: str | None) -> KeyRecord:
        """Like :meth:`authenticate`, raising :class:`InvalidKey` instead of returning ``None``."""
        if not secret:
            raise InvalidKey(
                "no API key was sent", hint="send it as x-api-key or Authorization: Bearer"
            )
        record = self.authenticate(secret)
        if record is None:
            raise InvalidKey(
                "the API key is not valid (unknown, revoked or past its rotation grace period)",
                hint="create a new one with `orchestra keys create`",
            )
        return record

    def get(self, key_id: str) -> KeyRecord:
        """The key ``key_id``; raises :class:`KeyNotFound`."""
        with self._store.db.session() as session:
            row = session.get(GatewayKey, key_id)
            if row is None:
                raise KeyNotFound(f"no key with id {key_id!r}", hint="see `orchestra keys list`")
            return self._with_org(_record(row))

    def list(self, *, include_revoked: bool = True) -> list[KeyRecord]:
        """Every key, oldest first."""
        with self._store.db.session() as session:
            query = select(GatewayKey).order_by(GatewayKey.created_at, GatewayKey.id)
            if not include_revoked:
                query = query.where(GatewayKey.revoked_at.is_(None))
            return [self._with_org(_record(r)) for r in session.scalars(query)]

    def _forget(self, key_id: str) -> None:
        with self._lock:
            for digest, (_, _, rec) in list(self._cache.items()):
                if rec.id == key_id:
                    del self._cache[digest]

    def revoke(self, key_id: str, *, actor: str = "system") -> KeyRecord:
        """Revoke a key at once (also an old key still in its rotation grace period)."""
        now = self._clock()
        with self._audit.transaction() as tx:
            row = _locked(tx.conn, key_id)
            record = _record(row)
            if row.revoked_at is None:
                tx.conn.execute(
                    update(GatewayKey).where(GatewayKey.id == key_id).values(revoked_at=now)
                )
                record = replace(record, revoked_at=as_utc(now))
            tx.append(actor, "key.revoke", key_id, {"developer": record.developer})
        self._forget(key_id)
        return record

    def rotate(
        self, key_id: str, grace: timedelta = timedelta(hours=1), *, actor: str = "system"
    ) -> tuple[str, KeyRecord]:
        """Issue a new key with the same owner; the old one works until ``now + grace``."""
        if grace < timedelta(0):
            raise InvalidKey(
                "the grace period cannot be negative", hint="use e.g. --grace 1h or 0s"
            )
        now = self._clock()
        with self._audit.transaction() as tx:
            old = _record(_locked(tx.conn, key_id))
            if not old.usable(now):
                raise InvalidKey(
                    f"key {key_id} is {old.status(now)} and cannot be rotated",
                    hint="create a new key with `orchestra keys create`",
                )
            secret, row = self._insert(old.developer, old.team, old.admin, old.name, old.holder)
            tx.conn.execute(insert(GatewayKey).values(**_columns(row)))
            expires = now + grace
            if old.expires_at is not None and old.expires_at < expires:
                expires = old.expires_at
            tx.conn.execute(
                update(GatewayKey)
                .where(GatewayKey.id == key_id)
                .values(expires_at=expires, replaced_by=row.id)
            )
            record = _record(row)
            tx.append(
                actor,
                "key.rotate",
                key_id,
                {
                    "new_key": record.id,
                    "grace_s": int(grace.total_seconds()),
                    "prefix": record.prefix,
                },
            )
        self._forget(key_id)
        return secret, self._with_org(record)


def _columns(row: GatewayKey) -> dict[str, Any]:
    """The column values of a new key row, for a Core ``INSERT``."""
    return {c.key: getattr(row, c.key) for c in GatewayKey.__table__.columns}


def _locked(conn: Connection, key_id: str) -> Any:
    """The key's row, locked until the transaction ends; raises :class:`KeyNotFound`."""
    query = select(GatewayKey.__table__).where(GatewayKey.id == key_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # SQLite: BEGIN IMMEDIATE holds the lock already
    row = conn.execute(query).first()
    if row is None:
        raise KeyNotFound(f"no key with id {key_id!r}", hint="see `orchestra keys list`")
    return row
