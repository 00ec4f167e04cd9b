"""The topologies as policies: hard limits and quotas are never exceeded, minimums are
honoured while their tribe has demand, lent capacity comes back, and each topology orders
the same queue differently."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestra.errors import SchedulingError
from orchestra.scheduling import (
    Demand,
    Limits,
    Placement,
    Quotas,
    Running,
    nested_minimums,
    next_demand,
)

SQUADS = {"s1": "t1", "s2": "t1", "s3": "t2", "s4": "t3"}
REGION = {"t1": "eu", "t2": "eu", "t3": "us"}


def place(dev: int) -> Placement:
    squad = f"s{dev % 4 + 1}"
    tribe = SQUADS[squad]
    return Placement(f"d{dev}", squad, tribe, REGION[tribe])


@dataclass
class Org:
    """A small organisation's queue and counts, driven by arrivals and finishes."""

    topology: str
    limits: Limits
    quotas: Quotas | None
    queue: list[Demand]
    running: Running
    started: list[Demand]

    def fill(self) -> list[Demand]:
        """Start demands until the policy picks none; the ones started, in order."""
        picked = []
        while d := next_demand(self.topology, self.queue, self.running, self.limits, self.quotas):
            self.queue.remove(d)
            self.running.start(d.placement)
            self.started.append(d)
            picked.append(d)
        return picked


def quotas_for(topology: str, capacity: int) -> Quotas | None:
    if topology == "hierarchical":
        return Quotas("squad", {"s1": capacity // 4, "s2": capacity // 4, "s3": 1, "s4": 1})
    if topology == "federated_hierarchical":
        return Quotas("tribe", {"t1": capacity // 2, "t2": capacity // 4, "t3": 1})
    if topology == "enterprise_mesh":
        regions = {"eu": capacity - capacity // 3, "us": capacity // 3}
        mins = nested_minimums(regions, {"eu": ["t1", "t2"], "us": ["t3"]}, {"t1": 2, "t2": 1})
        return Quotas("region", regions, mins)
    return None


events = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.integers(0, 11)),
        st.tuples(st.just("end"), st.integers(0, 50)),
    ),
    max_size=60,
)
topologies = st.sampled_from(
    ["single_node", "mesh", "hierarchical", "federated_hierarchical", "enterprise_mesh"]
)


def check(org: Org) -> None:
    r, limits = org.running, org.limits
    assert r.total <= limits.capacity
    assert all(n <= limits.per_developer for n in r.counts["developer"].values())
    quotas = org.quotas
    if org.topology in ("hierarchical", "enterprise_mesh") and quotas is not None:
        for unit, n in r.counts[quotas.level].items():
            assert n <= quotas.of(unit), (unit, n)


@settings(max_examples=150, deadline=None)
@given(topologies, st.integers(3, 12), st.integers(1, 3), events)
def test_no_policy_exceeds_cap_per_developer_limit_or_hard_quota(
    topology: str, capacity: int, per_dev: int, script: list[tuple[str, int]]
) -> None:
    org = Org(
        topology, Limits(capacity, per_dev), quotas_for(topology, capacity), [], Running(), []
    )
    for i, (kind, n) in enumerate(script):
        if kind == "arrive":
            org.queue.append(Demand(f"q{i}", place(n), float(i)))
        elif org.started:
            gone = org.started.pop(n % len(org.started))
            org.running.finish(gone.placement)
        org.fill()
        check(org)
        # Work-conserving: what is left waiting could not start under the limits.
        assert next_demand(topology, org.queue, org.running, org.limits, org.quotas) is None


@settings(max_examples=150, deadline=None)
@given(st.integers(4, 12), events)
def test_federated_minimums_come_first_and_lent_capacity_returns(
    capacity: int, script: list[tuple[str, int]]
) -> None:
    quotas = quotas_for("federated_hierarchical", capacity)
    assert quotas is not None
    org = Org("federated_hierarchical", Limits(capacity, 3), quotas, [], Running(), [])
    for i, (kind, n) in enumerate(script):
        if kind == "arrive":
            org.queue.append(Demand(f"q{i}", place(n), float(i)))
        elif org.started:
            gone = org.started.pop(n % len(org.started))
            org.running.finish(gone.placement)
        # Before each pick: if a tribe under its minimum has a demand that fits the limits,
        # the slot goes to a tribe under its minimum, never to a borrower.
        while True:
            needy = [
                d
                for d in org.queue
                if org.running.at("tribe", d.placement.tribe) < quotas.of(d.placement.tribe)
                and org.running.at("developer", d.placement.developer) < 3
            ]
            d = next_demand(org.topology, org.queue, org.running, org.limits, quotas)
            if d is None:
                assert not needy or org.running.total == capacity
                break
            if needy:
                tribe = d.placement.tribe
                assert org.running.at("tribe", tribe) < quotas.of(tribe)
            org.queue.remove(d)
            org.running.start(d.placement)
            org.started.append(d)


def test_federated_lends_idle_capacity_and_takes_it_back() -> None:
    quotas = Quotas("tribe", {"t1": 2, "t3": 2})
    org = Org("federated_hierarchical", Limits(4, 4), quotas, [], Running(), [])
    # t3 is idle: t1 borrows all four slots.
    org.queue = [Demand(f"a{i}", place(0), float(i)) for i in range(6)]
    assert len(org.fill()) == 4
    assert org.running.at("tribe", "t1") == 4
    # t3's demand arrives while t1 still waits: each slot t1 frees goes back to t3.
    org.queue += [Demand(f"b{i}", place(3), 10.0 + i) for i in range(3)]
    for _ in range(2):
        gone = next(d for d in org.started if d.placement.tribe == "t1")
        org.started.remove(gone)
        org.running.finish(gone.placement)
        (picked,) = org.fill()
        assert picked.placement.tribe == "t3"
    # A t3 agent ends while t1 still waits: t3 is under its minimum again, so t3 gets it.
    gone = next(d for d in org.started if d.placement.tribe == "t3")
    org.started.remove(gone)
    org.running.finish(gone.placement)
    assert org.fill()[0].placement.tribe == "t3"


def test_topologies_order_the_same_queue_differently() -> None:
    # d0 (squad s1) queued three demands first, d1 (s2) one later.
    queue = [Demand(f"x{i}", place(0), float(i)) for i in range(3)]
    queue.append(Demand("y", place(1), 5.0))
    running = Running()
    running.start(place(0))
    limits = Limits(10, 4)
    fifo = next_demand("single_node", queue, running, limits)
    fair = next_demand("mesh", queue, running, limits)
    assert fifo is not None and fifo.id == "x0"
    assert fair is not None and fair.id == "y"  # d0 already runs one agent
    squads = Quotas("squad", {"s1": 1, "s2": 1})
    hier = next_demand("hierarchical", queue, running, limits, squads)
    assert hier is not None and hier.id == "y"  # s1 is at its quota
    assert next_demand("hierarchical", queue[:3], running, limits, squads) is None
    # Federated: s1's tribe t1 (d0 and d1 are both in t1) borrows when nobody else waits.
    fed = next_demand(
        "federated_hierarchical", queue[:3], running, limits, Quotas("tribe", {"t1": 1})
    )
    assert fed is not None and fed.id == "x0"


def test_enterprise_regions_do_not_lend_to_each_other() -> None:
    regions = Quotas("region", {"eu": 1, "us": 3}, {"t1": 1, "t3": 3})
    running = Running()
    running.start(place(0))  # eu is full
    queue = [Demand("eu2", place(4), 0.0)]
    assert next_demand("enterprise_mesh", queue, running, Limits(4, 4), regions) is None
    queue.append(Demand("us", place(3), 1.0))
    picked = next_demand("enterprise_mesh", queue, running, Limits(4, 4), regions)
    assert picked is not None and picked.id == "us"


def test_quota_topologies_refuse_missing_quotas_and_unknown_topologies() -> None:
    queue = [Demand("x", place(0), 0.0)]
    with pytest.raises(SchedulingError, match="needs quotas per squad"):
        next_demand("hierarchical", queue, Running(), Limits(2, 1))
    with pytest.raises(SchedulingError, match="unknown topology"):
        next_demand("ring", queue, Running(), Limits(2, 1))
    with pytest.raises(SchedulingError, match="over the cap"):
        Quotas("squad", {"a": 3}).check(Limits(2, 1))
    with pytest.raises(SchedulingError, match="no agent of d0"):
        Running().finish(place(0))
