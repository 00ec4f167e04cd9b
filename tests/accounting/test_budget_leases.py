"""Budget leases: a block of a window's headroom reserved once, granted call by call in
memory, settled, returned and expired without ever breaking ``spent + reserved <= cap``."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection as PipeEnd
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestra.accounting import (
    Accounting,
    AccountingStore,
    Attribution,
    BudgetBook,
    BudgetExceeded,
    BudgetSpec,
)
from orchestra.accounting.budgets import Hold, LeasePolicy, Reservation
from orchestra.store import Database, open_database

from .conftest import FakeClock

ALICE = Attribution(org="acme", squad="payments", developer="alice", key_id="k", run_id="r")
D = Decimal
LEASES = LeasePolicy(calls=64, sweep=False)  # the tests return idle leases themselves


def nothing_held(book: BudgetBook) -> bool:
    """No hold is left to expire, however late it is (no reservation or lease row)."""
    return book.expire_stale(datetime(2999, 1, 1, tzinfo=UTC)) == 0


def totals(book: BudgetBook, name: str = "b") -> tuple[Decimal, Decimal]:
    (status,) = book.status(name)
    return status.spent_usd, status.reserved_usd


@pytest.fixture
def book(database: Database, clock: FakeClock) -> Iterator[BudgetBook]:
    b = BudgetBook(database, clock=clock, leases=LEASES)
    yield b
    b.close()
    b.store.close()


def flush(book: BudgetBook) -> None:
    """Wait for the work queued so far (lease takes and returns in the background)."""
    book.store.committer.run(lambda conn: None)


def test_one_lease_serves_many_calls(book: BudgetBook, database: Database) -> None:
    book.define(BudgetSpec("b", "developer", "alice", D(1000), "month"))
    reservations = [book.reserve(ALICE, "m", D("0.01")) for _ in range(40)]
    # one lease of 64 estimates (under 1/8 of the headroom) covers all forty calls
    flush(book)
    (lease,) = {h.lease for r in reservations for h in r.holds}
    assert lease is not None and lease.startswith("lse_")
    assert totals(book) == (D(0), D("0.64"))  # the database counts the whole lease
    for r in reservations:
        book.settle(r, D("0.02"))
    assert totals(book) == (D("0.80"), D("0.24"))  # settled estimates left the lease
    book.close()  # the unused remainder goes back
    assert totals(book) == (D("0.80"), D(0))
    assert nothing_held(book)


def test_a_lease_is_topped_up_and_exact_mode_near_the_cap(book: BudgetBook) -> None:
    """Leases shrink with the headroom; under 32 estimates each call is reserved exactly,
    and the process's own lease goes back first: all 100 calls the cap covers are granted."""
    book.define(BudgetSpec("b", "developer", "alice", D(10), "month"))
    granted = []
    with pytest.raises(BudgetExceeded):
        for _ in range(101):
            granted.append(book.reserve(ALICE, "m", D("0.10")))
    assert len(granted) == 100
    leased = [r for r in granted if r.holds[0].lease is not None]
    exact = [r for r in granted if r.holds[0].lease is None]
    assert leased and exact
    # a lease is taken only with 32 estimates of headroom left, and is at most 1/8 of it:
    # the last calls are all reserved one by one
    assert all(r.holds[0].lease is None for r in granted[-20:])
    assert totals(book) == (D(0), D(10))
    for r in granted:
        book.release(r)
    assert totals(book) == (D(0), D(0))


def test_a_small_budget_is_always_reserved_exactly(book: BudgetBook) -> None:
    book.define(BudgetSpec("b", "developer", "alice", D(1), "month"))
    r = book.reserve(ALICE, "m", D("0.05"))  # 20 estimates of headroom: no lease
    assert r.holds[0].lease is None and totals(book) == (D(0), D("0.05"))


def test_settlement_after_the_lease_went_back(book: BudgetBook) -> None:
    book.define(BudgetSpec("b", "developer", "alice", D(1000), "month"))
    rs = [book.reserve(ALICE, "m", D("0.01")) for _ in range(3)]
    book.close()  # returns the unused part only: the three grants stay held
    assert totals(book) == (D(0), D("0.03"))
    book.settle(rs[0], D("0.05"))
    book.release(rs[1])
    book.settle(rs[2], D("0.01"))
    assert totals(book) == (D("0.06"), D(0))
    assert nothing_held(book)  # the emptied lease row is gone


def test_idle_and_old_leases_go_back(book: BudgetBook, clock: FakeClock) -> None:
    book.define(BudgetSpec("b", "developer", "alice", D(1000), "month"))
    r = book.reserve(ALICE, "m", D("0.01"))
    clock.advance(seconds=1)
    assert book.return_idle() == 0  # used a second ago
    clock.advance(seconds=2)
    assert book.return_idle() == 1
    assert totals(book) == (D(0), D("0.01"))
    r2 = book.reserve(ALICE, "m", D("0.01"))  # a new lease
    assert r2.holds[0].lease not in (None, r.holds[0].lease)
    later = []
    for _ in range(10):  # in use, but after max_age_s no lease grants any more
        clock.advance(seconds=1.5)
        later.append(book.reserve(ALICE, "m", D("0.01")))
    leases = {x.holds[0].lease for x in [r, r2, *later]}
    assert None not in leases and len(leases) == 3


def test_period_rollover_returns_the_old_lease(database: Database, clock: FakeClock) -> None:
    clock.now = datetime(2026, 3, 18, 23, 59, 59, tzinfo=UTC)
    book = BudgetBook(database, clock=clock, leases=LEASES)
    try:
        book.define(BudgetSpec("b", "developer", "alice", D(1000), "day"))
        old = book.reserve(ALICE, "m", D("0.01"))
        clock.advance(seconds=2)  # 00:00:01, a new day
        new = book.reserve(ALICE, "m", D("0.01"))
        assert new.holds[0].window_id != old.holds[0].window_id
        assert totals(book) == (D(0), D("0.64"))  # today's lease
        book.settle(old, D("0.02"))  # charged to yesterday, whose lease went back
        clock.now = datetime(2026, 3, 18, 12, tzinfo=UTC)
        assert totals(book) == (D("0.02"), D(0))
    finally:
        book.close()
        book.store.close()


def test_a_changed_budget_drops_its_lease(book: BudgetBook) -> None:
    book.define(BudgetSpec("b", "developer", "alice", D(1000), "month"))
    r = book.reserve(ALICE, "m", D("0.01"))
    book.define(BudgetSpec("b", "developer", "alice", D("0.30"), "month"))  # cap lowered
    assert totals(book) == (D(0), D("0.01"))  # the lease went back at once
    r2 = book.reserve(ALICE, "m", D("0.01"))
    assert r2.holds[0].lease is None  # 29 estimates of headroom left: exact
    book.settle(r, D("0.01"))
    book.settle(r2, D("0.01"))
    assert totals(book) == (D("0.02"), D(0))


def test_a_refusal_elsewhere_gives_the_grant_back(book: BudgetBook) -> None:
    book.define(BudgetSpec("b", "developer", "alice", D(1000), "month"))
    book.reserve(ALICE, "m", D("0.01"))  # the developer budget's lease
    book.define(BudgetSpec("tight", "team", "payments", D("0.01"), "month"))
    with pytest.raises(BudgetExceeded):
        book.reserve(ALICE, "m", D("0.02"))
    r = book.reserve(ALICE, "m", D("0.01"))
    assert {h.budget_name: h.lease is not None for h in r.holds} == {"b": True, "tight": False}
    assert totals(book) == (D(0), D("0.64"))


def test_journal_form_keeps_the_lease_and_reads_the_old_form(book: BudgetBook) -> None:
    book.define(BudgetSpec("b", "developer", "alice", D(1000), "month"))
    r = book.reserve(ALICE, "m", D("0.01"))
    back = Reservation.from_json(json.loads(json.dumps(r.as_json())))
    assert back.holds == r.holds and back.id == r.id and back.estimate_usd == r.estimate_usd
    old = {"id": "res_1", "estimate": "0.5", "holds": [[3, "b", 500_000_000]]}
    assert Reservation.from_json(old) == Reservation(
        "res_1", D("0.5"), (Hold(3, "b", 500_000_000),)
    )
    exact = Reservation("res_2", D(1), (Hold(3, "b", 10**9),))
    assert exact.as_json() == {"id": "res_2", "estimate": "1", "holds": [[3, "b", 10**9]]}


def test_two_books_on_one_database_never_overspend(database: Database) -> None:
    books = [BudgetBook(AccountingStore(database), leases=LEASES) for _ in range(2)]
    books[0].define(BudgetSpec("b", "developer", "alice", D(5), "month"))
    granted: list[int] = []
    over: list[tuple[Decimal, Decimal]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def call(book: BudgetBook) -> None:
        barrier.wait()
        for _ in range(100):
            try:
                r = book.reserve(ALICE, "m", D("0.01"))
            except BudgetExceeded:
                continue
            with lock:
                granted.append(1)
            spent, reserved = totals(book)
            if spent + reserved > 5:
                over.append((spent, reserved))
            book.settle(r, D("0.01"))

    workers = [threading.Thread(target=call, args=(books[i % 2],)) for i in range(8)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for book in books:
            book.close()
        assert over == []
        assert 490 <= len(granted) <= 500  # refusals come only within a lease of the cap
        assert totals(books[0]) == (D("0.01") * len(granted), D(0))
    finally:
        for book in books:
            book.close()
            book.store.close()


def _process_calls(
    url: str, calls: int, start: multiprocessing.synchronize.Event, out: PipeEnd
) -> None:
    acc = Accounting(open_database(url), pepper=b"p")
    start.wait()
    ok = 0
    for _ in range(calls):
        try:
            r = acc.budgets.reserve(ALICE, "m", D("0.01"))
        except BudgetExceeded:
            continue
        ok += 1
        acc.budgets.settle(r, D("0.01"))
    acc.close()
    out.send(ok)


@pytest.mark.slow
def test_leasing_processes_never_overspend(database_url: str, database: Database) -> None:
    setup = Accounting(database, pepper=b"p")
    setup.budgets.define(BudgetSpec("b", "developer", "alice", D(3), "month"))
    setup.close()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    pipes = [ctx.Pipe() for _ in range(2)]
    procs = [
        ctx.Process(target=_process_calls, args=(database_url, 200, start, there))
        for _, there in pipes
    ]
    for p in procs:
        p.start()
    start.set()
    granted = 0
    for (here, _), p in zip(pipes, procs, strict=True):
        assert here.poll(120)
        granted += here.recv()
        p.join(30)
    assert 290 <= granted <= 300  # 3.00 / 0.01 out of 400 attempts, never more
    book = BudgetBook(database)
    try:
        assert totals(book) == (D("0.01") * granted, D(0))
    finally:
        book.store.close()


def _reserve_and_die(url: str, out: PipeEnd) -> None:
    book = BudgetBook(open_database(url), leases=LEASES)
    rs = [book.reserve(ALICE, "m", D("0.01")) for _ in range(2)]
    out.send(json.dumps([r.as_json() for r in rs]))
    out.close()
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_dead_process_lease_expires_once(database_url: str, database: Database) -> None:
    book = BudgetBook(database, leases=LEASES)
    try:
        book.define(BudgetSpec("b", "developer", "alice", D(1000), "month"))
        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe()
        child = ctx.Process(target=_reserve_and_die, args=(database_url, there))
        child.start()
        journaled = [Reservation.from_json(r) for r in json.loads(here.recv())]
        child.join(60)
        assert child.exitcode == -signal.SIGKILL
        assert totals(book) == (D(0), D("0.64"))  # the dead process's lease
        # Reconciled after the crash: the first with its lease id (its estimate leaves the
        # lease at once), the second as a journal without lease ids has it (charged; the
        # estimate stays in the lease row until that expires).
        book.settle(journaled[0], D("0.02"))
        (hold,) = journaled[1].holds
        book.settle(replace(journaled[1], holds=(replace(hold, lease=None),)), D("0.03"))
        assert totals(book) == (D("0.05"), D("0.63"))
        assert book.expire_stale() == 0  # not before its TTL
        later = datetime.now(UTC) + timedelta(minutes=16)
        assert book.expire_stale(later) == 1
        assert book.expire_stale(later) == 0
        assert totals(book) == (D("0.05"), D(0))  # given back once, all of it
    finally:
        book.close()
        book.store.close()


def test_accounting_leases_follow_the_config(database: Database, tmp_path: Path) -> None:
    from orchestra.config import parse_config

    config = parse_config("gateway:\n  budget_leases: {enabled: false}\n", source="t")
    acc = Accounting(database, config, journal_dir=tmp_path / "j", pepper=b"p")
    try:
        acc.budgets.define(BudgetSpec("b", "developer", "alice", D(1000), "month"))
        assert acc.budgets.reserve(ALICE, "m", D("0.01")).holds[0].lease is None
    finally:
        acc.close()
    acc = Accounting(database, journal_dir=tmp_path / "j", pepper=b"p")
    try:
        assert acc.budgets.reserve(ALICE, "m", D("0.01")).holds[0].lease is not None
    finally:
        acc.close()  # gives the lease back
    book = BudgetBook(database)
    try:  # the unsettled exact hold and the leased call's estimate, not the lease
        assert totals(book) == (D(0), D("0.02"))
    finally:
        book.store.close()


steps = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "reserve", "reserve", "settle", "release", "idle", "expire"]),
        st.integers(min_value=0, max_value=1),  # which book
        st.integers(min_value=1, max_value=300),  # estimate in cents
        st.integers(min_value=0, max_value=500),  # actual in cents
    ),
    max_size=40,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cap_cents=st.integers(min_value=0, max_value=100_000), ops=steps)
def test_leases_keep_the_invariant(
    tmp_path_factory: pytest.TempPathFactory, cap_cents: int, ops: list[tuple[str, int, int, int]]
) -> None:
    folder = tmp_path_factory.mktemp("leases")
    db = open_database(f"sqlite:///{folder / 'p.db'}")
    clock = FakeClock(datetime(2026, 3, 18, tzinfo=UTC))
    books = [BudgetBook(AccountingStore(db), clock=clock, leases=LEASES) for _ in range(2)]
    try:
        books[0].define(BudgetSpec("b", "developer", "alice", D(cap_cents) / 100, "month"))
        held: list[tuple[int, Reservation, Decimal]] = []
        expired: set[str] = set()  # reservations whose holds expired (dead callers)
        spent = overrun = D(0)
        for op, which, est, actual in ops:
            book = books[which]
            if op == "reserve":
                estimate = D(est) / 100
                try:
                    held.append((which, book.reserve(ALICE, "m", estimate), estimate))
                except BudgetExceeded:  # only an exact reservation that failed refuses
                    now_spent, now_reserved = totals(book)
                    assert now_spent + now_reserved + estimate > D(cap_cents) / 100
            elif op in ("settle", "release") and held:
                owner, r, estimate = held.pop(0)
                if op == "settle":
                    books[owner].settle(r, D(actual) / 100)
                    spent += D(actual) / 100
                    # beyond the cap by what a call costs over its estimate, or all of
                    # it when its hold expired (its caller was presumed dead)
                    uncovered = D(actual) / 100 - (0 if r.id in expired else estimate)
                    overrun += max(uncovered, D(0))
                else:
                    books[owner].release(r)
            elif op == "idle":
                clock.advance(seconds=3)
                book.return_idle()
            elif op == "expire":
                clock.advance(minutes=16)
                book.expire_stale()
                expired.update(r.id for _, r, _ in held)
            now_spent, now_reserved = totals(book)
            assert now_spent + now_reserved <= D(cap_cents) / 100 + overrun
            assert now_spent == spent
        for owner, r, _ in held:
            books[owner].release(r)
        for book in books:
            book.close()
        assert totals(books[0]) == (spent, D(0))
        assert nothing_held(books[0])
    finally:
        for book in books:
            book.close()
            book.store.close()
        db.dispose()


def test_lease_takes_are_amortised_and_prefetched(book: BudgetBook) -> None:
    """200 calls on five leases: the next lease is taken in the background each time the
    current one runs low (15 estimates left, given back), before it runs out (used to the
    end, 64 estimates each, four would do)."""
    book.define(BudgetSpec("b", "developer", "alice", D(1_000_000), "month"))
    granted = []
    for _ in range(200):
        r = book.reserve(ALICE, "m", D("0.01"))
        assert r.holds[0].lease is not None
        granted.append(r.holds[0].lease)
        flush(book)  # as if calls came slower than a transaction
    assert len(set(granted)) == 5
    runs = [lease for lease, _ in itertools.groupby(granted)]
    assert len(runs) == 5  # one lease after the other, never back to an earlier one
    book.close()
    assert totals(book) == (D(0), D(2))
