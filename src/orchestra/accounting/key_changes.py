"""A number that changes whenever a key may have changed, in any process on the database.

Key caches (the key store's, the gateway's) remember the number a key was read under and
read the key again once it moved, so a revocation made by the CLI, another worker or
another replica takes effect on the next request, not after a cache's TTL.

The number is the audit chain's head sequence: every key change commits in the same
transaction as its audit entry (:meth:`orchestra.accounting.audit.AuditLog.transaction`),
so the head moves with every change. Other audited actions (budgets, secrets) move it
too; a cache refill after those is the price of one shared counter.

* **SQLite:** one indexed read of the one-row head table per check, on a connection kept
  open for it (a few microseconds; WAL readers never wait for writers).
* **PostgreSQL:** a round trip per request would be too dear, so a thread ``LISTEN``\\ s
  on the channel every audit entry notifies at commit and bumps a local number: a check
  reads an attribute. Until the listener is connected (and after it loses its connection)
  every check returns a new number, so nothing is served from a cache meanwhile.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import weakref
from typing import Any

from orchestra.accounting.audit import NOTIFY_CHANNEL
from orchestra.accounting.store import AccountingStore

log = logging.getLogger("orchestra.accounting")

_HEAD_QUERY = "SELECT last_seq FROM gateway_audit_head WHERE id = 1"


class KeyChanges:
    """The shared key-change counter of one database (see the module's docstring)."""

    def __init__(self, store: AccountingStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._unique = itertools.count(-1, -1)
        """Numbers never returned before: "assume everything changed"."""
        self._sqlite: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None
        """Kept: reusing one cursor saves a third of a check's cost."""
        self._sqlite_path: str | None = None
        url = store.db.engine.url
        if store.dialect == "sqlite" and url.database and url.database != ":memory:":
            self._sqlite_path = url.database
        self._postgres = store.dialect == "postgresql"
        self.version = 0
        """PostgreSQL: bumped by the listener thread on each notification."""
        self._listening = threading.Event()
        """PostgreSQL: set while the listener is connected (checks trust ``version`` then)."""
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    def current(self) -> int:
        """The counter now; cheap enough for every request."""
        if self._postgres:
            if self._listener is None:
                self._start_listener()
            if self._listening.is_set():
                return self.version
            return next(self._unique)
        if self._sqlite_path is None:  # in-memory SQLite: a single process, no sharing
            return self._read_memory()
        with self._lock:
            try:
                if self._cursor is None:
                    # Never wait for a lock (the check runs on the event loop): a busy
                    # database reads as "changed", which only costs a cache refill.
                    self._sqlite = sqlite3.connect(
                        self._sqlite_path,
                        check_same_thread=False,
                        isolation_level=None,
                        timeout=0,
                    )
                    self._sqlite.execute("PRAGMA query_only = ON")
                    self._cursor = self._sqlite.cursor()
                row = self._cursor.execute(_HEAD_QUERY).fetchone()
            except sqlite3.Error as exc:
                log.debug("cannot read the key-change counter: %s", exc)
                return next(self._unique)
        return int(row[0]) if row is not None else 0

    def wait_ready(self, timeout: float) -> bool:
        """Start following changes now; whether they are followed within ``timeout`` s."""
        if not self._postgres:
            return True
        if self._listener is None:
            self._start_listener()
        if self._listening.wait(timeout):
            return True
        log.warning(
            "key changes are not followed yet (cannot LISTEN on %s within %.0f s): every "
            "request reads its key from the database until the listener connects",
            NOTIFY_CHANNEL,
            timeout,
        )
        return False

    def _read_memory(self) -> int:
        from sqlalchemy import text

        with self._store.db.engine.connect() as conn:
            value = conn.execute(text(_HEAD_QUERY)).scalar()
        return int(value) if value is not None else 0

    def _start_listener(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            url = self._store.db.engine.url.set(drivername="postgresql")
            conninfo = url.render_as_string(hide_password=False)
            self._listener = threading.Thread(
                target=_listen,
                args=(weakref.ref(self), conninfo, self._stop),
                name="orchestra-key-changes",
                daemon=True,
            )
            self._listener.start()

    def close(self) -> None:
        """Stop the listener and close the connection kept for checks."""
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        with self._lock:
            if self._sqlite is not None:
                self._sqlite.close()
                self._sqlite, self._cursor = None, None


def _listen(ref: weakref.ref[KeyChanges], conninfo: str, stop: threading.Event) -> None:
    """The listener thread: holds only a weak reference, so it ends with its owner."""
    import psycopg

    failures = 0
    while not stop.is_set() and ref() is not None:
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                owner = ref()
                if owner is None:
                    return
                owner.version += 1  # anything read before we listened is stale
                owner._listening.set()
                del owner
                failures = 0
                while not stop.is_set():
                    for _ in conn.notifies(timeout=0.5):
                        _bump(ref)
                    if ref() is None:
                        return
        except Exception as exc:  # any failure: reconnect; caches are bypassed meanwhile
            failures += 1
            owner = ref()
            if owner is not None:
                owner._listening.clear()
                del owner
            level = logging.WARNING if failures == 1 else logging.DEBUG
            log.log(level, "key-change listener lost its database connection: %s", exc)
            stop.wait(min(5.0, 0.2 * failures))
    owner = ref()
    if owner is not None:
        owner._listening.clear()


def _bump(ref: weakref.ref[Any]) -> None:
    owner = ref()
    if owner is not None:
        owner.version += 1
