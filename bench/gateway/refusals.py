"""The refusal path: what a call refused by a budget or a rate limit costs the gateway.

``python -m bench.gateway.refusals`` starts the fake upstream and ``orchestra gateway`` on
SQLite (as ``bench/gateway/run.py`` does) with three keys: one whose developer's budget is
$0 (every call refused by the budget), one whose developer may make one request a minute
(every call after the first refused by the rate limit), and one served normally (the
baseline, measured in the same run). Each is loaded with ``wrk`` at 50 connections in
``BENCH_ROUNDS`` rounds; printed: refusals or answers per second, the gateway's CPU per
answer, and the refusals against the served calls. Afterwards the ledger is checked: one
row per refused call (outcome ``budget_refused`` or ``rate_limited``), so the refusal path
is measured with the rows it now writes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.gateway.run import ROUNDS, Server, start_gateway_process, start_upstream, wrk

BODY = {"model": "haiku", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi."}]}


def _start_gateway(work: Path, upstream_url: str) -> tuple[Server, dict[str, str], str]:
    gateway: dict[str, object] = {
        "budgets": [
            {
                "name": "broke",
                "scope": "developer",
                "subject": "broke",
                "cap_usd": 0,
                "period": "day",
            },
            {
                "name": "served",
                "scope": "developer",
                "subject": "served",
                "cap_usd": 1_000_000,
                "period": "day",
            },
        ],
        "limits": {
            "key": {"rpm": 100_000_000, "tpm": 1_000_000_000},
            "developers": {"slow": {"rpm": 1}},
        },
    }
    server, keys, database_url, _ = start_gateway_process(
        work, upstream_url, gateway, ["broke", "slow", "served"]
    )
    return server, keys, database_url


def _ledger_outcomes(database_url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from orchestra.store import open_database
    from orchestra.store.tables.gateway import GatewayLedgerEntry as L

    database = open_database(database_url)
    try:
        with database.session() as session:
            rows = session.execute(select(L.outcome, func.count()).group_by(L.outcome)).all()
    finally:
        database.dispose()
    return {str(outcome): int(n) for outcome, n in rows}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="orchestra-refusals-") as tmp:
        work = Path(tmp)
        upstream = start_upstream(work, "fake")
        gateway, keys, database_url = _start_gateway(work, upstream.url)
        url = gateway.url + "/v1/messages"
        rates: dict[str, list[float]] = {k: [] for k in keys}
        cpu: dict[str, list[float]] = {k: [] for k in keys}
        answers: dict[str, int] = dict.fromkeys(keys, 0)
        try:
            for n in range(ROUNDS):
                print(f"round {n + 1}/{ROUNDS}", flush=True)
                for who, key in keys.items():
                    headers = {"anthropic-version": "2023-06-01", "x-api-key": key}
                    before = gateway.cpu_seconds()
                    result = wrk(url, BODY, headers, 50, work)
                    used = gateway.cpu_seconds() - before
                    rates[who].append(result["rps"])
                    if result["requests"]:
                        cpu[who].append(used / result["requests"] * 1e6)
                    answers[who] += int(result["requests"])
        finally:
            gateway.stop()
            upstream.stop()
        time.sleep(0.1)
        outcomes = _ledger_outcomes(database_url)
    served = statistics.median(rates["served"])
    print(f"{'key':<28}{'answers/s':>10}{'cpu us/answer':>15}{'x served':>10}")
    for who, label in (
        ("served", "served (baseline)"),
        ("broke", "refused by the budget"),
        ("slow", "refused by the rate limit"),
    ):
        rate = statistics.median(rates[who])
        print(f"{label:<28}{rate:>10.0f}{statistics.median(cpu[who]):>15.0f}{rate / served:>10.2f}")
    print(
        f"ledger rows: {outcomes} (answers sent: broke {answers['broke']}, "
        f"slow {answers['slow']}, served {answers['served']}; wrk's last in-flight requests "
        "may be cut when it stops)"
    )


if __name__ == "__main__":
    main()
