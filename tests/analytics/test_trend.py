"""Mann-Kendall against values worked by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestra.analytics.trend import mann_kendall


def test_a_strictly_rising_series() -> None:
    t = mann_kendall([float(i) for i in range(10)])
    # S = 45 pairs, Var = 10*9*25/18 = 125, Z = 44/sqrt(125)
    assert (t.s, t.variance) == (45, 125.0)
    assert t.z == pytest.approx(44 / math.sqrt(125))
    assert t.p_value == pytest.approx(8.32e-5, rel=0.01)
    assert t.rising() and not t.falling() and t.slope == 1.0


def test_ties_reduce_the_variance() -> None:
    t = mann_kendall([1.0, 2.0, 2.0, 3.0])
    # S: (1,2)+ (1,2)+ (1,3)+ (2,2)0 (2,3)+ (2,3)+ = 5; one tie group of 2: 2*1*9 = 18
    assert t.s == 5
    assert t.variance == pytest.approx((4 * 3 * 13 - 18) / 18)


def test_one_bad_day_is_not_a_trend() -> None:
    flat_then_spike = [10.0, 11.0, 9.0, 10.0, 11.0, 9.0, 10.0, 30.0]
    t = mann_kendall(flat_then_spike)
    assert not t.rising()
    assert mann_kendall([5.0, 5.0, 5.0, 5.0]).p_value == 1.0


@given(st.lists(st.integers(min_value=-1000, max_value=1000), min_size=2, max_size=40))
def test_reversing_a_series_negates_s_and_keeps_p(values: list[int]) -> None:
    forward = mann_kendall([float(v) for v in values])
    backward = mann_kendall([float(v) for v in reversed(values)])
    assert backward.s == -forward.s
    assert backward.p_value == pytest.approx(forward.p_value)
    assert 0.0 <= forward.p_value <= 1.0
    assert not (forward.rising() and forward.falling())
