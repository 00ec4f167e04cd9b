"""Rate limits: requests and tokens per minute, per key, developer and team.

The window is a *sliding* minute approximated from two fixed one-minute counters (the
current minute, plus the previous one weighted by how much of it still overlaps the last
60 seconds), so a burst at a minute boundary cannot double the limit.

Where counts live (so limits never multiply with the number of workers):

* :class:`MemoryCounters` — in this process. The default for SQLite, where one gateway
  process serves the database. Lock-protected dict updates: microseconds per request.
* :class:`DatabaseCounters` — in ``gateway_rate_counters``, shared by every process on the
  database. The default on PostgreSQL (several workers or machines): one upsert per
  counted subject per request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection, delete, select

from orchestra.accounting.attribution import Attribution, PerAttribution
from orchestra.accounting.errors import RateLimited
from orchestra.accounting.store import AccountingStore
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayRateCounter

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Limits per minute; ``None`` means unlimited."""

    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """Default limits per kind of subject, and per-name overrides."""

    key: RateLimit = RateLimit()
    developer: RateLimit = RateLimit()
    team: RateLimit = RateLimit()
    developers: Mapping[str, RateLimit] = field(default_factory=dict)
    teams: Mapping[str, RateLimit] = field(default_factory=dict)

    def subjects(self, a: Attribution) -> list[tuple[str, RateLimit]]:
        """``(subject id, limit)`` pairs that apply to a call, skipping unlimited ones."""
        out: list[tuple[str, RateLimit]] = []
        if a.key_id:
            out.append((f"key:{a.key_id}", self.key))
        if a.developer:
            out.append(
                (f"developer:{a.developer}", self.developers.get(a.developer, self.developer))
            )
        if a.squad:
            out.append((f"team:{a.squad}", self.teams.get(a.squad, self.team)))
        return [(s, lim) for s, lim in out if lim.rpm is not None or lim.tpm is not None]


class Counters(Protocol):
    """Storage of per-minute counts."""

    def add(
        self, subjects: list[tuple[str, RateLimit]], tokens: int, now: float
    ) -> tuple[str, int, float] | None:
        """Count one request of ``tokens`` for every subject, unless one would exceed its
        limit; then count nothing and return ``(limit name, limit, retry after s)``."""

    def adjust(self, subjects: list[str], tokens: int, now: float) -> None:
        """Add ``tokens`` (may be negative) to the current minute of ``subjects``."""


def _sliding(prev: int, cur: int, now: float) -> float:
    elapsed = now % WINDOW_S
    return prev * (1 - elapsed / WINDOW_S) + cur


def _retry_after(now: float) -> float:
    return float(max(1, math.ceil(WINDOW_S - now % WINDOW_S)))


def _verdict(
    subjects: list[tuple[str, RateLimit]],
    counts: Mapping[str, tuple[int, int, int, int]],
    tokens: int,
    now: float,
) -> tuple[str, int, float] | None:
    for subject, lim in subjects:
        prev_r, prev_t, cur_r, cur_t = counts.get(subject, (0, 0, 0, 0))
        refused = _over(subject, lim, prev_r, prev_t, cur_r, cur_t, tokens, now)
        if refused is not None:
            return refused
    return None


def _over(
    subject: str,
    lim: RateLimit,
    prev_r: int,
    prev_t: int,
    cur_r: int,
    cur_t: int,
    tokens: int,
    now: float,
) -> tuple[str, int, float] | None:
    """The refusal if one more request of ``tokens`` would exceed ``lim`` on ``subject``."""
    if lim.rpm is not None and _sliding(prev_r, cur_r, now) + 1 > lim.rpm:
        return f"{subject} requests", lim.rpm, _retry_after(now)
    if lim.tpm is not None and tokens > 0 and _sliding(prev_t, cur_t, now) + tokens > lim.tpm:
        return f"{subject} tokens", lim.tpm, _retry_after(now)
    return None


class MemoryCounters:
    """Counts in this process only: per subject, one cell ``[minute, previous minute's
    requests, its tokens, this minute's requests, its tokens]``, moved on as minutes pass
    (so memory grows with the subjects, not with time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[str, list[int]] = {}

    def _cell(self, subject: str, minute: int) -> list[int]:
        """``subject``'s cell, moved on to ``minute`` (call with the lock held)."""
        cell = self._cells.get(subject)
        if cell is None:
            cell = self._cells[subject] = [minute, 0, 0, 0, 0]
        elif cell[0] != minute:
            if cell[0] == minute - 1:
                cell[1:] = [cell[3], cell[4], 0, 0]
            else:
                cell[1:] = [0, 0, 0, 0]
            cell[0] = minute
        return cell

    def add(
        self, subjects: list[tuple[str, RateLimit]], tokens: int, now: float
    ) -> tuple[str, int, float] | None:
        """Count one request of ``tokens`` for every subject unless one of them would go
        over its limit: then count nothing and return ``(what, limit, retry after s)``."""
        minute = int(now // WINDOW_S)
        with self._lock:
            cells = []
            for s, lim in subjects:
                cell = self._cell(s, minute)
                refused = _over(s, lim, cell[1], cell[2], cell[3], cell[4], tokens, now)
                if refused is not None:
                    return refused
                cells.append(cell)
            for cell in cells:
                cell[3] += 1
                cell[4] += tokens
        return None

    def adjust(self, subjects: list[str], tokens: int, now: float) -> None:
        """Add ``tokens`` (negative to take back) to the subjects' current minute, once a
        call's real usage is known."""
        minute = int(now // WINDOW_S)
        with self._lock:
            for s in subjects:
                self._cell(s, minute)[4] += tokens


class DatabaseCounters:
    """Counts in the database, shared by all processes (one transaction per request)."""

    def __init__(self, db: Database | AccountingStore) -> None:
        self._store = AccountingStore.of(db)

    def _upsert(
        self, conn: Connection, subject: str, minute: int, requests: int, tokens: int
    ) -> None:
        values = {
            "subject": subject,
            "window_start": minute,
            "requests": requests,
            "tokens": tokens,
        }
        set_ = {
            "requests": GatewayRateCounter.requests + requests,
            "tokens": GatewayRateCounter.tokens + tokens,
        }
        keys = ["subject", "window_start"]
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(
                pg_insert(GatewayRateCounter)
                .values(**values)
                .on_conflict_do_update(index_elements=keys, set_=set_)
            )
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(
                sqlite_insert(GatewayRateCounter)
                .values(**values)
                .on_conflict_do_update(index_elements=keys, set_=set_)
            )

    def add(
        self, subjects: list[tuple[str, RateLimit]], tokens: int, now: float
    ) -> tuple[str, int, float] | None:
        """Count one request of ``tokens`` for every subject unless one of them would go
        over its limit: then count nothing and return ``(what, limit, retry after s)``.
        Atomic across processes: the subjects' rows are locked in one order first."""
        minute = int(now // WINDOW_S)
        names = sorted(s for s, _ in subjects)  # one lock order across processes
        with self._store.write_engine.begin() as conn:
            for s in names:  # take the row locks first, so the check below is atomic
                self._upsert(conn, s, minute, 0, 0)
            rows = conn.execute(
                select(
                    GatewayRateCounter.subject,
                    GatewayRateCounter.window_start,
                    GatewayRateCounter.requests,
                    GatewayRateCounter.tokens,
                ).where(
                    GatewayRateCounter.subject.in_(names),
                    GatewayRateCounter.window_start.in_([minute - 1, minute]),
                )
            ).all()
            by: dict[tuple[str, int], tuple[int, int]] = {(r[0], r[1]): (r[2], r[3]) for r in rows}
            counts = {
                s: (*by.get((s, minute - 1), (0, 0)), *by.get((s, minute), (0, 0))) for s in names
            }
            refused = _verdict(subjects, counts, tokens, now)
            if refused is None:
                for s in names:
                    self._upsert(conn, s, minute, 1, tokens)
            if int(now) % 97 == 0:  # now and then, drop minutes that no longer count
                conn.execute(
                    delete(GatewayRateCounter).where(GatewayRateCounter.window_start < minute - 1)
                )
        return refused

    def adjust(self, subjects: list[str], tokens: int, now: float) -> None:
        """Add ``tokens`` (negative to take back) to the subjects' current minute, once a
        call's real usage is known."""
        minute = int(now // WINDOW_S)
        with self._store.write_engine.begin() as conn:
            for s in sorted(subjects):
                self._upsert(conn, s, minute, 0, tokens)


class RateLimiter:
    """Check and count a call against every applicable per-minute limit."""

    def __init__(
        self,
        policy: RateLimitPolicy,
        *,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._counters: Counters = counters if counters is not None else MemoryCounters()
        self._clock = clock
        self._subjects = PerAttribution(RateLimitPolicy.subjects)
        """Subjects per attribution, until :attr:`policy` is replaced."""

    def _subjects_for(self, attribution: Attribution) -> list[tuple[str, RateLimit]]:
        """``policy.subjects(attribution)``, remembered per attribution (the same few
        callers make every request)."""
        return self._subjects.get(self.policy, attribution)

    @classmethod
    def for_database(
        cls, policy: RateLimitPolicy, db: Database | AccountingStore, *, shared: bool | None = None
    ) -> RateLimiter:
        """In-memory counters on SQLite, database counters on PostgreSQL (or as ``shared`` says)."""
        store = AccountingStore.of(db)
        use_db = shared if shared is not None else store.dialect != "sqlite"
        return cls(policy, counters=DatabaseCounters(store) if use_db else MemoryCounters())

    def check_and_count(self, attribution: Attribution, tokens: int = 0) -> None:
        """Count one request of ``tokens`` (estimated) tokens, or raise :class:`RateLimited`."""
        subjects = self._subjects_for(attribution)
        if not subjects:
            return
        refused = self._counters.add(subjects, max(0, tokens), self._clock())
        if refused is not None:
            name, limit, retry = refused
            raise RateLimited(name, limit=limit, retry_after_s=retry)

    def record_tokens(self, attribution: Attribution, delta_tokens: int) -> None:
        """Correct the token count once the real usage is known (``actual - estimate``)."""
        subjects = [s for s, lim in self._subjects_for(attribution) if lim.tpm is not None]
        if subjects and delta_tokens:
            self._counters.adjust(subjects, delta_tokens, self._clock())
