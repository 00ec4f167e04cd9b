"""Accounting hot path per model call: reserve + ledger append (settling in the same commit).

Baseline, measured in the same run: one plain SQLAlchemy Core ``INSERT`` of a ledger-sized
row per call, committed on its own (what a naive durable ledger costs). Printed for each
scenario: calls per second and wall-clock microseconds per call, and CPU microseconds per
call (all threads of this process); each as a ratio against the baseline (higher is
better). SQLite file in a temporary folder, WAL mode,
``synchronous=NORMAL`` (Orchestra's defaults).

Scenarios:
  baseline-insert      1 thread, one INSERT + COMMIT per call
  ledger-seq           1 thread, ledger append only (no budget applies)
  reserve+append-seq   1 thread, reserve on 2 budgets + append settling them
  reserve+append-x50   50 threads doing the same concurrently (group commit)
  async-x50            50 asyncio tasks with areserve + aappend (the gateway's way)
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

from orchestra.accounting import Accounting, Attribution, BudgetSpec, LedgerEntry
from orchestra.providers import Usage
from orchestra.store import open_database
from orchestra.store.tables.gateway import GatewayLedgerEntry

WHO = Attribution(
    org="acme", squad="payments", developer="alice", key_id="key_bench", agent="bench"
)
N_SEQ = 1500
N_CONC = 4000
CONC = 50


def _row() -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4().hex,
        "started_at": now,
        "ended_at": now,
        "org": "acme",
        "squad": "payments",
        "developer": "alice",
        "key_id": "key_bench",
        "agent": "bench",
        "requested_model": "sonnet",
        "served_model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "input_tokens": 1000,
        "output_tokens": 200,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_nano": 6_000_000,
        "latency_ms": 12.0,
        "retries": 0,
        "fallback_path": "",
        "outcome": "ok",
        "stream": False,
    }


def _timed(n: int, fn: Callable[[], None]) -> tuple[float, float]:
    """Calls per second (wall clock) and CPU microseconds per call (this process, all
    threads: less sensitive than the wall clock to other work on a shared machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return n / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / n


def _threads(n: int, workers: int, call: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        per = n // workers

        def work() -> None:
            for _ in range(per):
                call()

        ts = [threading.Thread(target=work) for _ in range(workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return run


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = open_database(f"sqlite:///{folder / 'bench.db'}")
        acc = Accounting(db, journal_dir=folder / "journal", pepper=b"bench")
        acc.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(10**9), "month"))
        acc.budgets.define(BudgetSpec("team", "team", "payments", Decimal(10**9), "month"))
        estimate = acc.prices.estimate("claude-sonnet-4-5", 1000, 1024)
        usage = Usage(1000, 200)
        nobody = Attribution(developer="nobody", key_id="key_x")

        def baseline() -> None:
            for _ in range(N_SEQ):
                with db.engine.begin() as conn:
                    conn.execute(insert(GatewayLedgerEntry), [_row()])

        def ledger_only() -> None:
            for _ in range(N_SEQ):
                acc.ledger.append(LedgerEntry(nobody, "sonnet", "claude-sonnet-4-5", usage=usage))

        def one_call() -> None:
            r = acc.budgets.reserve(WHO, "claude-sonnet-4-5", estimate)
            acc.ledger.append(
                LedgerEntry(WHO, "sonnet", "claude-sonnet-4-5", usage=usage), reservation=r
            )

        def seq() -> None:
            for _ in range(N_SEQ):
                one_call()

        async def async_calls() -> None:
            sem = asyncio.Semaphore(CONC)

            async def call() -> None:
                async with sem:
                    r = await acc.budgets.areserve(WHO, "claude-sonnet-4-5", estimate)
                    await acc.ledger.aappend(
                        LedgerEntry(WHO, "sonnet", "claude-sonnet-4-5", usage=usage), reservation=r
                    )

            await asyncio.gather(*(call() for _ in range(N_CONC)))

        results: list[tuple[str, tuple[float, float]]] = []
        results.append(("baseline-insert", _timed(N_SEQ, baseline)))
        results.append(("ledger-seq", _timed(N_SEQ, ledger_only)))
        results.append(("reserve+append-seq", _timed(N_SEQ, seq)))
        results.append(("reserve+append-x50", _timed(N_CONC, _threads(N_CONC, CONC, one_call))))
        results.append(("async-x50", _timed(N_CONC, lambda: asyncio.run(async_calls()))))
        # Unused lease headroom counts as reserved until it goes back (budget leases).
        acc.budgets.close()
        (status,) = [s for s in acc.budgets.status() if s.spec.name == "dev"]
        acc.close()
        db.dispose()

    base, base_cpu = results[0][1]
    print(
        f"{'scenario':<22}{'calls/s':>10}{'us/call':>10}{'x baseline':>12}"
        f"{'cpu us/call':>13}{'x baseline cpu':>16}"
    )
    for name, (rate, cpu) in results:
        print(
            f"{name:<22}{rate:>10.0f}{1e6 / rate:>10.0f}{rate / base:>12.2f}"
            f"{cpu:>13.0f}{base_cpu / cpu:>16.2f}"
        )
    print(f"(check: {status.reserved_usd} left reserved after settling every call; should be 0)")


if __name__ == "__main__":
    main()
