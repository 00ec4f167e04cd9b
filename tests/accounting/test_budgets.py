from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from orchestra.accounting import (
    Accounting,
    AccountingStore,
    Attribution,
    BudgetAlerts,
    BudgetBook,
    BudgetExceeded,
    BudgetSpec,
    InvalidBudget,
    period_bounds,
)
from orchestra.accounting.audit import AuditChainBroken
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayAuditHead

from .conftest import FakeClock

ALICE = Attribution(
    org="acme",
    division="platform",
    tribe="money",
    squad="payments",
    developer="alice",
    key_id="key_a",
    run_id="run-1",
)
D = Decimal


def test_periods_are_calendar_aligned_in_utc() -> None:
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)  # a Thursday
    assert period_bounds("day", now) == (
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("week", now) == (
        datetime(2026, 12, 28, tzinfo=UTC),
        datetime(2027, 1, 4, tzinfo=UTC),
    )
    assert period_bounds("month", now) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("none", now) == (None, None)


def test_invalid_definitions_are_refused_with_a_fix(accounting: Accounting) -> None:
    for spec in (
        BudgetSpec("x", "galaxy", "a", D(1)),  # type: ignore[arg-type]
        BudgetSpec("x", "run", "r1", D(1), "month"),
        BudgetSpec("x", "team", "a", D(-1)),
        BudgetSpec("bad name!", "team", "a", D(1)),
        BudgetSpec("x", "team", "a", D(1), soft_pct=120),
    ):
        with pytest.raises(InvalidBudget) as err:
            accounting.budgets.define(spec)
        assert err.value.hint


def test_reserve_settle_release_and_the_hard_cap(accounting: Accounting, clock: FakeClock) -> None:
    book = accounting.budgets
    book.define(BudgetSpec("payments-day", "team", "payments", D("1.00"), "day"), actor="admin")
    r1 = book.reserve(ALICE, "claude-sonnet-4-5", D("0.40"))
    r2 = book.reserve(ALICE, "claude-sonnet-4-5", D("0.40"))
    with pytest.raises(BudgetExceeded) as err:
        book.reserve(ALICE, "claude-sonnet-4-5", D("0.40"))
    exc = err.value
    assert exc.budget_name == "payments-day"
    assert exc.resets_at == datetime(2026, 3, 19, tzinfo=UTC)
    assert exc.status == 429 and exc.retry_after_s == 12 * 3600
    assert "payments-day" in exc.message and "2026-03-19T00:00:00Z" in exc.message
    book.settle(r1, D("0.55"))  # actual may exceed the estimate: recorded as is
    book.release(r2)
    (status,) = book.status()
    assert (status.spent_usd, status.reserved_usd) == (D("0.55"), D(0))
    book.reserve(ALICE, "claude-sonnet-4-5", D("0.45"))
    with pytest.raises(BudgetExceeded):
        book.reserve(ALICE, "claude-sonnet-4-5", D("0.01"))
    clock.advance(days=1)  # a new day, a new period
    book.reserve(ALICE, "claude-sonnet-4-5", D("0.90"))


def test_every_level_applies_and_free_models_are_never_blocked(accounting: Accounting) -> None:
    book = accounting.budgets
    book.define(BudgetSpec("alice", "developer", "alice", D(10)))
    book.define(BudgetSpec("tribe", "team", "money", D("0.5")))
    book.define(BudgetSpec("org", "org", "acme", D(10)))
    book.define(BudgetSpec("bob", "developer", "bob", D(0)))
    assert {b.name for b in book.applicable(ALICE)} == {"alice", "tribe", "org"}
    r = book.reserve(ALICE, "claude-sonnet-4-5", D("0.5"))
    assert {h.budget_name for h in r.holds} == {"alice", "tribe", "org"}
    with pytest.raises(BudgetExceeded) as err:
        book.reserve(ALICE, "claude-sonnet-4-5", D("0.01"))
    assert err.value.budget_name == "tribe"
    # a refused reservation holds nothing anywhere
    assert {s.spec.name: s.reserved_usd for s in book.status()}["alice"] == D("0.5")
    free = book.reserve(ALICE, "qwen-local", D(0))
    assert free.empty
    bob = Attribution(developer="bob")
    assert book.reserve(bob, "local", D(0)).empty
    with pytest.raises(BudgetExceeded):
        book.reserve(bob, "claude-haiku-4-5", D("0.000001"))


def test_run_budget_has_no_period(accounting: Accounting, clock: FakeClock) -> None:
    book = accounting.budgets
    book.define(BudgetSpec("run:run-1", "run", "run-1", D(1), "none"))
    r = book.reserve(ALICE, "m", D("0.6"))
    book.settle(r, D("0.6"))
    clock.advance(days=40)
    with pytest.raises(BudgetExceeded) as err:
        book.reserve(ALICE, "m", D("0.6"))
    assert err.value.resets_at is None and err.value.retry_after_s is None
    assert "does not reset" in err.value.message
    # Another run of the same developer is not charged to run-1 (ALICE's calls are
    # run-1's, as a run key's are: the run an attribution carries binds).
    assert book.reserve(replace(ALICE, run_id="run-2"), "m", D("0.6")).holds == ()
    assert ALICE.for_call(run_id="run-2").run_id == "run-1"


def test_stale_reservations_expire_and_are_reclaimed_once(
    accounting: Accounting, clock: FakeClock
) -> None:
    book = accounting.budgets
    book.define(BudgetSpec("dev", "developer", "alice", D(1), "month"))
    stale = book.reserve(ALICE, "m", D("0.9"))
    with pytest.raises(BudgetExceeded):
        book.reserve(ALICE, "m", D("0.2"))
    clock.advance(minutes=16)  # past the 15-minute TTL
    assert book.expire_stale() == 1
    assert book.expire_stale() == 0
    ok = book.reserve(ALICE, "m", D("0.2"))
    # the dead caller comes back late: its real cost is recorded, its hold not returned twice
    book.settle(stale, D("0.1"))
    (status,) = book.status()
    assert status.spent_usd == D("0.1") and status.reserved_usd == D("0.2")
    book.release(ok)
    assert book.status()[0].reserved_usd == 0


def test_soft_threshold_alerts_once_per_period_with_webhook(
    database: Database, clock: FakeClock
) -> None:
    posted: list[dict[str, object]] = []
    done = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        done.set()
        return httpx.Response(204)

    alerts = BudgetAlerts(
        "https://hooks.example.invalid/budget?token=s3cret", transport=httpx.MockTransport(handler)
    )
    book = BudgetBook(database, alerts=alerts, clock=clock)
    try:
        book.define(BudgetSpec("dev", "developer", "alice", D(10), "day", soft_pct=80))
        book.settle(book.reserve(ALICE, "m", D(5)), D(5))
        assert alerts.sent == []
        book.settle(book.reserve(ALICE, "m", D(4)), D(4))  # 90%: crosses 80%
        book.settle(book.reserve(ALICE, "m", D("0.5")), D("0.5"))  # still above: no second alert
        assert done.wait(5)
        assert len(alerts.sent) == 1 and alerts.sent[0].budget == "dev"
        clock.advance(days=1)
        book.settle(book.reserve(ALICE, "m", D(9)), D(9))
        alerts.close()
        assert [a.period_start for a in alerts.sent] == [
            "2026-03-18T00:00:00Z",
            "2026-03-19T00:00:00Z",
        ]
        assert [p["budget"] for p in posted] == ["dev", "dev"]
        assert posted[0]["kind"] == "orchestra.budget.soft_threshold"
    finally:
        book.store.close()


def test_a_failing_webhook_never_blocks_or_leaks_its_token(
    database: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    alerts = BudgetAlerts(
        "https://hooks.example.invalid/b?token=s3cret", transport=httpx.MockTransport(handler)
    )
    book = BudgetBook(database, alerts=alerts, clock=clock)
    try:
        book.define(BudgetSpec("dev", "developer", "alice", D(1), "day", soft_pct=50))
        book.settle(book.reserve(ALICE, "m", D("0.9")), D("0.9"))
        alerts.close()
        assert "s3cret" not in caplog.text
        assert "failed" in caplog.text
    finally:
        book.store.close()


@pytest.mark.parametrize("threads", [100])
def test_concurrent_reservations_never_overspend(accounting: Accounting, threads: int) -> None:
    """100 threads against a budget that covers 10 calls: exactly 10 are granted."""
    book = accounting.budgets
    book.define(BudgetSpec("team", "team", "payments", D("1.00"), "month"))
    granted: list[object] = []
    refused: list[BudgetExceeded] = []
    barrier = threading.Barrier(threads)
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        try:
            r = book.reserve(ALICE, "m", D("0.10"))
        except BudgetExceeded as exc:
            with lock:
                refused.append(exc)
            return
        with lock:
            granted.append(r)
        book.settle(r, D("0.10"))

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(granted) == 10 and len(refused) == threads - 10
    (status,) = book.status()
    assert status.spent_usd == D("1.00") and status.reserved_usd == 0


def test_separate_writers_on_one_database_never_overspend(database: Database) -> None:
    """Four independent stores (own writer thread and connection each, as four gateway
    workers would have) share one budget: the database's atomic check decides."""
    books = [BudgetBook(AccountingStore(database)) for _ in range(4)]
    books[0].define(BudgetSpec("shared", "developer", "alice", D("1.00"), "month"))
    granted: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(80)

    def call(book: BudgetBook) -> None:
        barrier.wait()
        try:
            r = book.reserve(ALICE, "m", D("0.05"))
        except BudgetExceeded:
            return
        with lock:
            granted.append(1)
        book.settle(r, D("0.05"))

    workers = [threading.Thread(target=call, args=(books[i % 4],)) for i in range(80)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    try:
        assert len(granted) == 20
        (status,) = books[0].status()
        assert status.spent_usd == D("1.00") and status.reserved_usd == 0
    finally:
        for book in books:
            book.store.close()


@pytest.mark.slow
def test_reservations_are_atomic_across_processes(tmp_path: Path) -> None:
    """Four processes on one SQLite file reserve against one budget: never over the cap."""
    import subprocess
    import sys

    from orchestra.store import open_database

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    db = open_database(url)
    acc = Accounting(db, journal_dir=tmp_path / "j", pepper=b"p")
    acc.budgets.define(BudgetSpec("shared", "developer", "alice", D("2.00"), "month"))
    acc.close()
    script = (
        "import sys\nfrom decimal import Decimal\nfrom orchestra.store import open_database\n"
        "from orchestra.accounting import Accounting, Attribution, BudgetExceeded\n"
        "acc = Accounting(open_database(sys.argv[1]), pepper=b'p')\nok = 0\n"
        "for _ in range(30):\n"
        "    try:\n"
        "        r = acc.budgets.reserve(Attribution(developer='alice'), 'm', Decimal('0.05'))\n"
        "    except BudgetExceeded:\n        continue\n"
        "    ok += 1\n    acc.budgets.settle(r, Decimal('0.05'))\n"
        "acc.close()\nprint(ok)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    granted = sum(int(p.communicate(timeout=120)[0]) for p in procs)
    assert granted == 40  # 2.00 / 0.05, out of 120 attempts
    acc = Accounting(db, journal_dir=tmp_path / "j", pepper=b"p")
    (status,) = acc.budgets.status()
    assert status.spent_usd == D("2.00") and status.reserved_usd == 0
    acc.close()
    db.dispose()


ops = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "settle", "release"]),
        st.integers(min_value=0, max_value=400),  # estimate in cents
        st.integers(min_value=0, max_value=600),  # actual in cents
    ),
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cap_cents=st.integers(min_value=0, max_value=2000), steps=ops)
def test_reserve_settle_release_sequences_keep_the_invariant(
    tmp_path_factory: pytest.TempPathFactory, cap_cents: int, steps: list[tuple[str, int, int]]
) -> None:
    from orchestra.store import open_database

    folder = tmp_path_factory.mktemp("prop")
    db = open_database(f"sqlite:///{folder / 'p.db'}")
    book = BudgetBook(db, clock=lambda: datetime(2026, 3, 18, tzinfo=UTC))
    try:
        book.define(BudgetSpec("b", "developer", "alice", D(cap_cents) / 100, "month"))
        held: list[tuple[object, D]] = []
        spent = D(0)
        for op, est, actual in steps:
            status = book.status()[0]
            if op == "reserve":
                estimate = D(est) / 100
                try:
                    r = book.reserve(ALICE, "m", estimate)
                except BudgetExceeded:
                    assert (
                        estimate > 0
                        and status.spent_usd + status.reserved_usd + estimate > status.spec.cap_usd
                    )
                    continue
                if estimate > 0:  # at grant time the cap holds, including this reservation
                    after = book.status()[0]
                    assert after.spent_usd + after.reserved_usd <= after.spec.cap_usd
                held.append((r, estimate))
            elif held:
                r, estimate = held.pop(0)
                if op == "settle":
                    book.settle(r, D(actual) / 100)  # type: ignore[arg-type]
                    if not r.empty:  # type: ignore[attr-defined]
                        spent += D(actual) / 100
                else:
                    book.release(r)  # type: ignore[arg-type]
            status = book.status()[0]
            assert status.spent_usd == spent  # settlement totals equal the actual costs
            assert status.reserved_usd == sum((e for r, e in held if not r.empty), D(0))  # type: ignore[attr-defined]
    finally:
        book.store.close()
        db.dispose()


def test_config_budgets_are_synced_and_audited(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    from orchestra.config import parse_config

    config = parse_config(
        "gateway:\n  budgets:\n"
        "    - {name: pay, scope: team, subject: payments, cap_usd: 50, period: week}\n",
        source="test",
    )
    acc = Accounting(database, config, clock=clock, journal_dir=tmp_path / "j", pepper=b"p")
    try:
        acc.start()
        acc.start()  # idempotent: no second audit entry
        (spec,) = acc.budgets.list()
        assert (spec.name, spec.period, spec.cap_usd) == ("pay", "week", D(50))
        assert [e.action for e in acc.audit.list()] == ["budget.set"]
    finally:
        acc.close()
    acc = Accounting(database, None, clock=clock, journal_dir=tmp_path / "j", pepper=b"p")
    try:
        acc.start()  # the budget left the config: removed
        assert acc.budgets.list() == []
        assert [e.action for e in acc.audit.list()] == ["budget.remove", "budget.set"]
        assert acc.audit.verify().ok
    finally:
        acc.close()


def test_reservations_expire_at_ttl(accounting: Accounting) -> None:
    accounting.budgets.define(BudgetSpec("dev", "developer", "alice", D(1)))
    r = accounting.budgets.reserve(ALICE, "m", D("0.5"))
    assert r.expires_at is not None and r.created_at is not None
    assert r.expires_at - r.created_at == timedelta(seconds=900)


def test_async_twins_reserve_settle_release(accounting: Accounting) -> None:
    import asyncio

    book = accounting.budgets
    book.define(BudgetSpec("dev", "developer", "alice", D(1), "month"))

    async def scenario() -> None:
        results = await asyncio.gather(
            *(book.areserve(ALICE, "m", D("0.3")) for _ in range(5)), return_exceptions=True
        )
        granted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BudgetExceeded)]
        assert len(granted) == 3 and len(refused) == 2
        await book.asettle(granted[0], D("0.1"))  # type: ignore[arg-type]
        await book.arelease(granted[1])  # type: ignore[arg-type]

    asyncio.run(scenario())
    (status,) = book.status()
    assert status.spent_usd == D("0.1") and status.reserved_usd == D("0.3")


def test_budget_changes_fail_without_their_audit_entry(
    accounting: Accounting, database: Database
) -> None:
    """A budget change and its audit entry commit together, or neither does (issue 16 #9)."""
    accounting.budgets.define(BudgetSpec("cap", "team", "payments", Decimal(10), "month"))
    with database.session() as session:
        session.execute(delete(GatewayAuditHead))
    with pytest.raises(AuditChainBroken):
        accounting.budgets.define(BudgetSpec("cap", "team", "payments", Decimal(10**6), "month"))
    with pytest.raises(AuditChainBroken):
        accounting.budgets.define(BudgetSpec("new", "developer", "eve", Decimal(10**6), "month"))
    with pytest.raises(AuditChainBroken):
        accounting.budgets.remove("cap")
    assert [(s.spec.name, s.spec.cap_usd) for s in accounting.budgets.status()] == [
        ("cap", Decimal(10))
    ]
    assert [e.action for e in accounting.audit.list()] == ["budget.set"]
