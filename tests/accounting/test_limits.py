from __future__ import annotations

import pytest

from orchestra.accounting import (
    AccountingStore,
    Attribution,
    RateLimit,
    RateLimited,
    RateLimiter,
    RateLimitPolicy,
)
from orchestra.accounting.limits import DatabaseCounters, MemoryCounters
from orchestra.store import Database

A = Attribution(developer="alice", squad="payments", key_id="key_a")
B = Attribution(developer="bob", squad="payments", key_id="key_b")


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0  # a minute boundary (divisible by 60)

    def __call__(self) -> float:
        return self.t


def _limiters(
    database: Database, policy: RateLimitPolicy, clock: Clock
) -> tuple[list[RateLimiter], AccountingStore]:
    store = AccountingStore(database)
    return [
        RateLimiter(policy, counters=MemoryCounters(), clock=clock),
        RateLimiter(policy, counters=DatabaseCounters(store), clock=clock),
    ], store


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "database"])
def test_requests_per_minute_per_key_developer_and_team(database: Database, kind: int) -> None:
    clock = Clock()
    policy = RateLimitPolicy(key=RateLimit(rpm=3), team=RateLimit(rpm=5))
    limiters, store = _limiters(database, policy, clock)
    limiter = limiters[kind]
    try:
        for _ in range(3):
            limiter.check_and_count(A)
        with pytest.raises(RateLimited) as err:
            limiter.check_and_count(A)
        assert err.value.limit_name == "key:key_a requests" and err.value.retry_after_s == 60
        assert err.value.status == 429
        limiter.check_and_count(B)
        limiter.check_and_count(B)
        with pytest.raises(RateLimited) as err:  # the team's 5 per minute are used up
            limiter.check_and_count(B)
        assert err.value.limit_name == "team:payments requests"
        clock.t += 30  # sliding window: half of the previous minute still counts
        with pytest.raises(RateLimited) as err:
            limiter.check_and_count(A)
        assert err.value.retry_after_s == 30
        clock.t += 60
        limiter.check_and_count(A)
    finally:
        store.close()


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "database"])
def test_tokens_per_minute_and_corrections(database: Database, kind: int) -> None:
    clock = Clock()
    policy = RateLimitPolicy(developer=RateLimit(tpm=1000), developers={"bob": RateLimit(tpm=10)})
    limiters, store = _limiters(database, policy, clock)
    limiter = limiters[kind]
    try:
        limiter.check_and_count(A, 600)
        with pytest.raises(RateLimited, match="tokens"):
            limiter.check_and_count(A, 600)
        limiter.record_tokens(A, -500)  # the call used fewer tokens than estimated
        limiter.check_and_count(A, 600)
        with pytest.raises(RateLimited):
            limiter.check_and_count(B, 11)  # bob's override
    finally:
        store.close()


def test_database_counters_are_shared_between_limiters(database: Database) -> None:
    """Two workers on one database share one limit (it does not double)."""
    clock = Clock()
    policy = RateLimitPolicy(developer=RateLimit(rpm=4))
    s1, s2 = AccountingStore(database), AccountingStore(database)
    w1 = RateLimiter(policy, counters=DatabaseCounters(s1), clock=clock)
    w2 = RateLimiter(policy, counters=DatabaseCounters(s2), clock=clock)
    try:
        w1.check_and_count(A)
        w2.check_and_count(A)
        w1.check_and_count(A)
        w2.check_and_count(A)
        with pytest.raises(RateLimited):
            w1.check_and_count(A)
        with pytest.raises(RateLimited):
            w2.check_and_count(A)
    finally:
        s1.close()
        s2.close()


def test_for_database_picks_shared_counters_on_postgresql(database: Database) -> None:
    store = AccountingStore(database)
    try:
        limiter = RateLimiter.for_database(RateLimitPolicy(), store)
        expected = MemoryCounters if database.engine.dialect.name == "sqlite" else DatabaseCounters
        assert isinstance(limiter._counters, expected)
        limiter.check_and_count(A, 10**9)  # no limits configured: never refused
    finally:
        store.close()


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "database"])
def test_minutes_move_on_and_a_new_policy_applies_at_once(database: Database, kind: int) -> None:
    clock = Clock()
    limiters, store = _limiters(database, RateLimitPolicy(key=RateLimit(rpm=4)), clock)
    limiter = limiters[kind]
    try:
        for _ in range(4):
            limiter.check_and_count(A)
        clock.t += 60 + 45  # a quarter of the previous minute overlaps: 1 of its 4 counts
        for _ in range(3):
            limiter.check_and_count(A)
        with pytest.raises(RateLimited):
            limiter.check_and_count(A)
        clock.t += 120  # two minutes idle: nothing carries over
        for _ in range(4):
            limiter.check_and_count(A)
        limiter.policy = RateLimitPolicy(key=RateLimit(rpm=100))  # e.g. a config reload
        limiter.check_and_count(A)
        limiter.policy = RateLimitPolicy()  # unlimited
        for _ in range(200):
            limiter.check_and_count(A)
    finally:
        store.close()


def test_memory_counters_keep_one_cell_per_subject_however_long_they_run() -> None:
    clock = Clock()
    counters = MemoryCounters()
    limiter = RateLimiter(RateLimitPolicy(key=RateLimit(rpm=10)), counters=counters, clock=clock)
    for _ in range(500):
        limiter.check_and_count(A)
        limiter.check_and_count(B)
        clock.t += 60
    assert len(counters._cells) == 2
