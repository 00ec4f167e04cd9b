"""Dashboard queries over the ledger's rollups against the same queries as plain
``GROUP BY``\\ s over the raw rows, and the ledger's write throughput with and without
rollup maintenance, on SQLite and PostgreSQL (issue 13 §10).

    python -m bench.analytics [--rows 10000000] [--runs 100000] [--db both] [--reps 15]

Data (:mod:`.data`): 100 developers over the year before today, ``--rows`` ledger rows
and ``--runs`` runs, with realistic skew. SQLite: a file in a temporary folder, rows
inserted with ``executemany`` in transactions of 200,000; PostgreSQL: a scratch database
created and dropped (``--pg-url``), rows loaded with ``COPY``. The rollups are then
built from the rows (``rebuild_rollups``, what the migration's backfill does) and both
databases analysed.

Queries: for every dashboard page, the ledger questions it asks (``ledger_totals``, the
function the pages call), timed ``--reps`` times over the rollups and ``--raw-reps``
times as plain ``GROUP BY``\\ s over the raw rows (``raw=True``), in the same run;
p50/p95 and the ratio raw ÷ rollup. Write throughput: entries per second through the
ledger's writer (``Ledger.journal_and_queue`` then ``flush``, 8 threads), rounds with and
without folding the rows into the rollups interleaved on the loaded database (with: the
store's folder runs beside the writer and the clock stops once every row is folded);
median of the rounds. Then the cost per row of inserting and of folding.

``--keep DIR`` keeps the loaded data (SQLite file in DIR, a PostgreSQL database named
after the sizes) and reuses it in a later run with the same sizes; ``--load-only`` stops
after loading: load while the machine is busy, time when it is quiet.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

from bench.analytics.data import (
    COLUMNS_SQL,
    DIMENSION_COLUMNS,
    STAGE_COLUMNS,
    Org,
    dimensions,
    generate,
    ledger_select,
    org,
    staged,
)
from bench.analytics.data import Ledger as Calls
from orchestra.accounting import (
    AccountingStore,
    Attribution,
    Ledger,
    LedgerEntry,
    LedgerMatch,
    ledger_totals,
    rebuild_rollups,
)
from orchestra.accounting.ledger.entries import entry_row, row_json
from orchestra.accounting.ledger.writer import BatchRows
from orchestra.accounting.rollups import caught_up, fold, fold_until_caught_up
from orchestra.accounting.store import time_for
from orchestra.analytics.dataset import read_runs
from orchestra.providers import Usage
from orchestra.server.app import tune_gc
from orchestra.store import Database, open_database

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
CHUNK = 200_000


@contextlib.contextmanager
def sqlite_db(folder: Path, name: str = "bench.db") -> Iterator[Database]:
    db = open_database(f"sqlite:///{folder / name}")
    try:
        yield db
    finally:
        db.dispose()


@contextlib.contextmanager
def pg_db(url: str, keep: str | None = None) -> Iterator[Database]:
    """A scratch database, dropped afterwards; ``keep``: that database, created if absent
    and kept."""
    name = keep or f"bench_analytics_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(url, autocommit=True)
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if not exists:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = open_database(url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield db
    finally:
        db.dispose()
        if keep is None:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def stage(cur: Any, data: Calls, people: Org, sqlite: bool) -> None:
    """The calls as numbers in a staging table, and the small tables naming them."""
    ints = ", ".join(f"{c} bigint" for c in STAGE_COLUMNS)
    cur.execute(f"CREATE TABLE bench_calls ({ints})")
    mark = "?" if sqlite else "%s"
    for name, rows_ in dimensions(people).items():
        cur.execute(f"CREATE TABLE {name} ({DIMENSION_COLUMNS[name]})")
        marks = ", ".join([mark] * len(rows_[0]))
        cur.executemany(f"INSERT INTO {name} VALUES ({marks})", rows_)  # noqa: S608
    total = len(data.start_us)
    for lo in range(0, total, CHUNK):
        batch = staged(data, lo, min(lo + CHUNK, total))
        if sqlite:
            marks = ", ".join("?" * len(STAGE_COLUMNS))
            cur.executemany(f"INSERT INTO bench_calls VALUES ({marks})", batch)  # noqa: S608
        else:
            with cur.copy(f"COPY bench_calls ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)


def load(db: Database, rows_n: int, runs_n: int, end: datetime, people: Org) -> float:
    """Generate and store the ledger rows and runs; the seconds it took."""
    t = time.perf_counter()
    data = generate(rows_n, runs_n, end)
    sqlite = db.engine.dialect.name == "sqlite"
    raw: Any = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if sqlite:
            cur.execute("PRAGMA cache_size=-1000000")
        stage(cur, data, people, sqlite)
        raw.commit()
        select = ledger_select(db.engine.dialect.name)
        cur.execute(f"INSERT INTO gateway_ledger ({COLUMNS_SQL}) {select}")
        for name in ("bench_calls", *DIMENSION_COLUMNS):
            cur.execute(f"DROP TABLE {name}")
        raw.commit()
        first = data.start_us.min()
        run_rows = [
            (
                f"run-{k:06d}",
                "bench task",
                "/repo",
                ("succeeded", "failed", "review")[k % 10 // 7 if k % 10 < 9 else 2],
                datetime.fromtimestamp((first + k * 300_000_000) / 1e6, UTC),
            )
            for k in range(data.runs)
        ]
        sql = (
            "INSERT INTO engine_runs (id, task, pipeline, repo_path, status, created_at, "
            "updated_at, finished_at) VALUES (?, ?, 'test-first', ?, ?, ?, ?, ?)"
        )
        params = [(i, task, repo, st, at, at, at) for i, task, repo, st, at in run_rows]
        if sqlite:
            params = [(*p[:4], *(str(x)[:26] for x in p[4:])) for p in params]
        else:
            sql = sql.replace("?", "%s")
        cur.executemany(sql, params)
        raw.commit()
    finally:
        raw.close()
    with db.engine.begin() as conn:
        if not sqlite:
            conn.exec_driver_sql("SET LOCAL work_mem = '512MB'")  # sort in memory
        rebuild_rollups(conn)
    with db.engine.connect() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA analysis_limit = 1000")  # sample, not read whole
            conn.execute(text("ANALYZE"))
            conn.commit()
        else:  # what autovacuum does after a bulk load (hint bits, visibility, statistics)
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - t


Query = Callable[[Any, bool], object]


def _totals(**kw: Any) -> Query:
    return lambda conn, raw: ledger_totals(conn, raw=raw, **kw)


def _runs(where: list[LedgerMatch], since: datetime, until: datetime) -> Query:
    """The runs of the period with their cost, as ``Dataset`` reads them (a set: equal
    whatever the order)."""
    return lambda conn, raw: {tuple(r) for r in read_runs(conn, where, since, until, raw=raw)}


def pages(now: datetime) -> dict[str, dict[str, Query]]:
    """Each dashboard page's ledger questions, as the page asks them."""
    last90 = now - timedelta(days=90)
    month = datetime(now.year, now.month, 1, tzinfo=UTC)
    today = datetime.combine(now.date(), datetime.min.time(), UTC)
    squad = [LedgerMatch(("squad",), "squad-03")]
    dev = [LedgerMatch(("developer",), "dev-007")]

    def dataset(where: list[LedgerMatch], since: datetime, until: datetime) -> dict[str, Query]:
        return {
            "developer-months": _totals(
                by=("developer", "month"), where=where, since=since, until=until
            ),
            "per-run cost": _runs(where, since, until),
        }

    out: dict[str, dict[str, Query]] = {
        "overview (organisation, last-90d)": dataset([], last90, now),
        "unit (squad, last-90d)": dataset(squad, last90, now),
        "unit (developer, last-90d)": dataset(dev, last90, now),
    }
    kpis: dict[str, Query] = {}
    end = today + timedelta(days=1)
    for i in range(8):
        kpis[f"week -{i}"] = _totals(
            by=("developer", "month"),
            where=squad,
            since=end - timedelta(weeks=i + 1),
            until=end - timedelta(weeks=i),
        )
    kpis["8 weeks"] = _totals(
        by=("developer", "month"), where=squad, since=end - timedelta(weeks=8), until=end
    )
    kpis["per-run cost"] = _runs(squad, end - timedelta(weeks=8), end)
    out["kpis (squad, 8 weeks)"] = kpis
    for period, since in (("month", month), ("all", None)):
        out[f"spend (admin, {period})"] = {
            by: _totals(by=(dim,), since=since, until=None)
            for by, dim in (
                ("developer", "developer"),
                ("team", "squad"),
                ("model", "model"),
                ("day", "day"),
            )
        }
    out["spend (developer, month)"] = {
        by: _totals(by=(dim,), where=dev, since=month)
        for by, dim in (
            ("developer", "developer"),
            ("team", "squad"),
            ("model", "model"),
            ("day", "day"),
        )
    }
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _backend(conn: Any) -> int | None:
    """PostgreSQL: the pid of ``conn``'s server process, reniced to -10 like the benchmark
    (when allowed); SQLite: ``None`` (its work runs in this thread)."""
    if conn.dialect.name != "postgresql":
        return None
    pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, -10)
    conn.rollback()
    return pid


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _cpu_ms(pid: int | None) -> float:
    """The CPU time (user + system) process ``pid`` has used, ms (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_MS


def time_queries(db: Database, now: datetime, reps: int, raw_reps: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with db.engine.connect() as conn:
        pid = _backend(conn)
        for page, queries in pages(now).items():
            for name, query in queries.items():
                samples: dict[bool, list[float]] = {False: [], True: []}
                cpu: dict[bool, list[float]] = {False: [], True: []}
                answers: dict[bool, object] = {}
                for raw, n in ((False, reps), (True, raw_reps)):
                    for _ in range(n):
                        c, s = time.thread_time(), _cpu_ms(pid)
                        t = time.perf_counter()
                        answers[raw] = query(conn, raw)
                        samples[raw].append((time.perf_counter() - t) * 1000)
                        cpu[raw].append((time.thread_time() - c) * 1000 + _cpu_ms(pid) - s)
                        conn.rollback()
                a, b = answers[False], answers[True]
                results.append(
                    {
                        "page": page,
                        "query": name,
                        "equal": a == b,
                        **{
                            f"{'raw' if raw else 'rollup'}_{q}": pct(s, v)
                            for raw, s in samples.items()
                            for q, v in (("p50", 0.5), ("p95", 0.95))
                        },
                        "rollup_cpu_p95": pct(cpu[False], 0.95),
                        "raw_cpu_p50": pct(cpu[True], 0.5),
                    }
                )
                r = results[-1]
                ratio = r["raw_p50"] / max(r["rollup_p50"], 1e-6)
                print(
                    f"  {page:36s} {name:18s} rollup p50 {r['rollup_p50']:8.1f} ms "
                    f"p95 {r['rollup_p95']:8.1f} ms | raw p50 {r['raw_p50']:9.1f} ms "
                    f"p95 {r['raw_p95']:9.1f} ms | raw/rollup {ratio:7.1f}x | CPU (this "
                    f"thread + PG backend): rollup p95 {r['rollup_cpu_p95']:7.1f} ms, raw p50 "
                    f"{r['raw_cpu_p50']:8.1f} ms"
                    f"{'' if a == b else '  RESULTS DIFFER'}",
                    flush=True,
                )
    return results


def _call(who: Attribution, now: datetime) -> LedgerEntry:
    """A finished call of a sonnet-sized request, as the gateway records it."""
    return LedgerEntry(
        who,
        requested_model="claude-sonnet-4-5",
        served_model="claude-sonnet-4-5",
        provider="anthropic",
        tier="sonnet",
        usage=Usage(1200, 300),
        cost_usd=Decimal("0.0081"),
        started_at=now,
        ended_at=now,
        latency_ms=900.0,
    )


def throughput(
    db: Database, people: Org, entries: int, rounds: int, tmp: Path
) -> dict[bool, list[float]]:
    """Entries per second through the ledger writer, with and without folding them into
    the rollups, rounds interleaved. With: the store's folder runs beside the writer, as
    in production, and the clock stops only once every row is folded. Without: the rows
    are folded after the clock stops (so that the next round starts level)."""
    out: dict[bool, list[float]] = {True: [], False: []}
    now = datetime.now(UTC)
    for r in range(rounds):
        for on in (True, False):
            store = AccountingStore(db, rollups=on)
            ledger = Ledger(store, journal_dir=tmp / f"journal-{r}-{on}")
            per = entries // 8

            def work(k: int, per: int = per, ledger: Ledger = ledger) -> None:
                for i in range(per):
                    d = (k * 31 + i // 50) % 100  # a run's 50 calls are its developer's
                    who = Attribution(
                        org="acme",
                        division=people.division[d],
                        tribe=people.tribe[d],
                        squad=people.squad[d],
                        developer=people.developer[d],
                        key_id=f"key-{d:03d}",
                        agent=("coder", "tester", "reviewer")[i % 3],
                        run_id=f"run-new-{k}-{i // 50}",
                    )
                    ledger.journal_and_queue(_call(who, now))

            t = time.perf_counter()
            threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            ledger.flush()
            if on:
                fold_until_caught_up(store.write_engine)
            out[on].append(per * 8 / (time.perf_counter() - t))
            if not on:
                fold_until_caught_up(store.write_engine)
            ledger.close()
            store.close()
    return out


def fold_cost(db: Database, batches: int = 10, size: int = 5000) -> dict[str, list[float]]:
    """Microseconds per row (wall; CPU of this thread plus, on PostgreSQL, the server
    process) to insert ``size`` rows as the writer does (``BatchRows.insert``, one
    transaction), and to fold them into the rollups afterwards (``fold``)."""
    dialect = db.engine.dialect.name
    form = time_for(dialect)
    now = datetime.now(UTC)
    engine = AccountingStore(db, rollups=False).write_engine
    out: dict[str, list[float]] = {k: [] for k in ("insert", "insert_cpu", "fold", "fold_cpu")}
    with engine.connect() as conn:
        pid = _backend(conn)
        for k in range(batches):
            rows = BatchRows()
            for i in range(size):
                d = (i // 50 * 7 + k) % 100  # a run's 50 calls are its developer's
                who = Attribution(
                    org="acme",
                    squad=f"squad-{d % 12:02d}",
                    developer=f"dev-{d:03d}",
                    key_id=f"key-{d:03d}",
                    agent=("coder", "tester")[i % 2],
                    run_id=f"run-w{k}-{i // 50}",
                )
                row = entry_row(_call(who, now), form)
                rows.add(row, row_json(row) if dialect == "sqlite" else None)
            for what, work in (("insert", rows.insert), ("fold", fold)):
                t, c, b = time.perf_counter(), time.thread_time(), _cpu_ms(pid)
                while True:
                    with conn.begin():
                        work(conn)
                    if what == "insert" or caught_up(conn):
                        break
                    time.sleep(0.001)  # PostgreSQL: another client's transaction is open
                out[what].append((time.perf_counter() - t) * 1e6 / size)
                cpu_ms = (time.thread_time() - c) * 1000 + _cpu_ms(pid) - b
                out[f"{what}_cpu"].append(cpu_ms * 1000 / size)
                conn.rollback()
    return out


@dataclass
class Result:
    database: str
    rows: int
    runs: int
    load_s: float
    queries: list[dict[str, Any]]
    writes: dict[bool, list[float]]
    cost: dict[str, list[float]]


def _loaded(db: Database) -> bool:
    """Whether ``db`` (kept by an earlier ``--keep`` run) already holds the data."""
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM engine_runs LIMIT 1")).first() is not None


def bench_one(name: str, db: Database, args: argparse.Namespace, tmp: Path) -> Result | None:
    people = org()
    now = datetime.now(UTC)
    end = datetime.combine(now.date(), datetime.min.time(), UTC) + timedelta(days=1)
    if args.keep and _loaded(db):
        load_s = 0.0
        print(f"== {name}: the data kept by an earlier --keep run (not loaded again)", flush=True)
    else:
        print(f"== {name}: loading {args.rows:,} ledger rows and {args.runs:,} runs", flush=True)
        load_s = load(db, args.rows, args.runs, end, people)
        print(f"  loaded and rolled up in {load_s:.0f} s; load average {_loadavg()}", flush=True)
    if args.load_only:
        return None
    # The dashboard's questions are asked in the server's process, whose collector is
    # tuned at start (frozen start-up objects, fewer young collections): time them so.
    # Untuned, a collection now and then during a read of 20,000 runs doubled its time.
    tune_gc()
    queries = time_queries(db, now, args.reps, args.raw_reps)
    print(f"  queries done; load average {_loadavg()}", flush=True)
    writes = throughput(db, people, args.writes, args.rounds, tmp)
    on, off = statistics.median(writes[True]), statistics.median(writes[False])
    print(
        f"  ledger writes: {on:,.0f}/s with rollups, {off:,.0f}/s without "
        f"(rounds {[round(x) for x in writes[True]]} vs {[round(x) for x in writes[False]]}): "
        f"{(1 - on / off) * 100:+.1f}% lost",
        flush=True,
    )
    cost = fold_cost(db)
    med = {k: statistics.median(v) for k, v in cost.items()}
    print(
        f"  per row: insert {med['insert']:.1f} us wall / {med['insert_cpu']:.1f} us CPU; "
        f"fold {med['fold']:.1f} us wall / {med['fold_cpu']:.1f} us CPU "
        f"(this thread + PG backend, batches of 5,000)",
        flush=True,
    )
    return Result(name, args.rows, args.runs, load_s, queries, writes, cost)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def summary(results: list[Result]) -> None:
    print("\n== summary (p95 target 200 ms per query, over rollups)")
    for r in results:
        worst = max(r.queries, key=lambda q: q["rollup_p95"])
        worst_cpu = max(r.queries, key=lambda q: q["rollup_cpu_p95"])
        slow = [q for q in r.queries if q["rollup_p95"] > 200]
        ratios = [q["raw_p50"] / max(q["rollup_p50"], 1e-6) for q in r.queries]
        on, off = statistics.median(r.writes[True]), statistics.median(r.writes[False])
        fold_cpu = statistics.median(r.cost["fold_cpu"])
        insert_cpu = statistics.median(r.cost["insert_cpu"])
        print(
            f"{r.database}: {r.rows:,} rows, {r.runs:,} runs; "
            f"worst rollup p95 {worst['rollup_p95']:.1f} ms ({worst['page']}: {worst['query']}); "
            f"{len(slow)} of {len(r.queries)} queries over 200 ms; worst rollup CPU p95 (this "
            f"thread + PG backend) {worst_cpu['rollup_cpu_p95']:.1f} ms "
            f"({worst_cpu['page']}: {worst_cpu['query']}); raw/rollup p50 ratio median "
            f"{statistics.median(ratios):.1f}x, min {min(ratios):.1f}x; "
            f"all results equal: {all(q['equal'] for q in r.queries)}; "
            f"write throughput lost to rollups {(1 - on / off) * 100:+.1f}%; "
            f"fold CPU per row {fold_cpu:.1f} us against the insert's {insert_cpu:.1f} us"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.analytics")
    p.add_argument("--rows", type=int, default=10_000_000 if argv is not None else 200_000)
    p.add_argument("--runs", type=int, default=100_000 if argv is not None else 2_000)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--pg-url", default=os.environ.get("ORCHESTRA_TEST_DATABASE_URL", PG_URL))
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--raw-reps", type=int, default=3)
    p.add_argument("--writes", type=int, default=40_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--tmp", default=None, help="folder for the SQLite file (default: a temporary one)"
    )
    p.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the loaded data for a later run with the same --keep, --rows and --runs "
        "(the SQLite file in this folder, a PostgreSQL database named after the sizes), "
        "and reuse it if an earlier run kept it: load on a busy machine, time on a quiet one",
    )
    p.add_argument("--load-only", action="store_true", help="load (with --keep) and stop")
    args = p.parse_args(argv or [])
    results: list[Result] = []
    kept = f"bench_analytics_{args.rows}_{args.runs}" if args.keep else None
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        tmp = Path(folder)
        if args.db in ("sqlite", "both"):
            home = args.keep if args.keep else tmp
            home.mkdir(parents=True, exist_ok=True)
            with sqlite_db(home, f"{kept}.db" if kept else "bench.db") as db:
                result = bench_one("sqlite", db, args, tmp)
            if not kept:
                (tmp / "bench.db").unlink(missing_ok=True)
            results += [result] if result else []
        if args.db in ("postgresql", "both"):
            with pg_db(args.pg_url, kept) as db:
                result = bench_one("postgresql", db, args, tmp)
            results += [result] if result else []
    if not results:
        return 0
    summary(results)
    print(f"load average at the end: {_loadavg()}")
    return 0
