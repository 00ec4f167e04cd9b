"""The statistics: bootstrap intervals by task, McNemar's exact test, pairs needed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestra.experiments import mcnemar_exact, paired_bootstrap, pairs_needed


def test_bootstrap_is_reproducible_and_brackets_the_mean() -> None:
    tasks = [f"t{i % 10}" for i in range(40)]
    diffs = [0.1 * ((i * 7) % 5 - 2) for i in range(40)]
    a = paired_bootstrap(tasks, diffs, resamples=2000)
    b = paired_bootstrap(tasks, diffs, resamples=2000)
    assert a == b
    assert a.low <= a.mean <= a.high and a.low < a.high
    other_seed = paired_bootstrap(tasks, diffs, resamples=2000, seed=1)
    assert other_seed.mean == a.mean


def test_bootstrap_resamples_tasks_not_pairs() -> None:
    # Two tasks, each with two identical replicates: only three task draws are possible
    # ({a,a}, {a,b}, {b,b}), so the interval's ends are the tasks' own means.
    interval = paired_bootstrap(["a", "a", "b", "b"], [0.0, 0.0, -1.0, -1.0], resamples=4000)
    assert (interval.mean, interval.low, interval.high) == (-0.5, -1.0, 0.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=30))
def test_interval_within_the_range_of_the_differences(diffs: list[float]) -> None:
    tasks = [str(i) for i in range(len(diffs))]
    interval = paired_bootstrap(tasks, diffs, resamples=1000)
    assert min(diffs) - 1e-9 <= interval.low <= interval.high <= max(diffs) + 1e-9


def test_mcnemar_exact_on_the_discordant_pairs() -> None:
    base = [True] * 5 + [False] * 5 + [True] * 10
    cand = [False] * 5 + [False] * 5 + [True] * 10
    test = mcnemar_exact(base, cand)
    assert (test.baseline_only, test.candidate_only) == (5, 0)
    assert test.p_value == pytest.approx(2 * 0.5**5)  # 0.0625, two-sided
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0


def test_pairs_needed_follows_connors_formula() -> None:
    # 20 discordant among 100 pairs: pd = 21/102; d = 0.1 at alpha 0.05, power 0.8.
    from math import ceil, sqrt

    pd = 21 / 102
    expected = ceil((1.959964 * sqrt(pd) + 0.841621 * sqrt(pd - 0.01)) ** 2 / 0.01)
    assert pairs_needed(20, 100, effect=0.1) == expected
    assert pairs_needed(0, 4, effect=0.1) > 100  # four concordant pairs prove little
    assert pairs_needed(20, 100, effect=0.2) < pairs_needed(20, 100, effect=0.1)
    with pytest.raises(ValueError):
        pairs_needed(1, 2, effect=0)
