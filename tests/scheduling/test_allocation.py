"""Allocation: apportioning is exact and proportional, dynamic quotas follow queue depth on
their interval, predictive quotas follow the forecast, and forecasts use Holt-Winters once
two seasons of history exist."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestra.errors import SchedulingError
from orchestra.scheduling import HOLT_WINTERS, Allocation, apportion, forecast_demand


@given(
    st.dictionaries(st.sampled_from("abcdefghi"), st.floats(0, 1e6), min_size=1),
    st.integers(9, 1000),
)
def test_apportion_adds_up_exactly_and_gives_each_unit_its_floor(
    weights: dict[str, float], total: int
) -> None:
    parts = apportion(weights, total)
    assert sum(parts.values()) == total
    assert set(parts) == set(weights)
    assert all(v >= 1 for v in parts.values())
    mass = sum(weights.values())
    if mass > 0:
        spare = total - len(weights)
        for unit, part in parts.items():
            # Largest remainder: within one slot of the exact share.
            assert abs(part - 1 - spare * weights[unit] / mass) < 1 + 1e-6


def test_apportion_refuses_more_units_than_slots() -> None:
    with pytest.raises(SchedulingError, match="cannot give 3 units"):
        apportion({"a": 1, "b": 1, "c": 1}, 2)


def test_static_quotas_never_move_and_dynamic_ones_follow_demand_on_their_interval() -> None:
    weights = {"a": 1.0, "b": 1.0}
    static = Allocation("static", "squad", 10, weights)
    assert not static.rebalance(0.0, {"a": 50}, {})
    assert dict(static.quotas.slots) == {"a": 5, "b": 5}
    dynamic = Allocation("dynamic", "squad", 10, weights, interval_s=60)
    assert dynamic.rebalance(0.0, {"a": 7}, {"a": 1})
    assert dict(dynamic.quotas.slots) == {"a": 9, "b": 1}
    assert not dynamic.rebalance(30.0, {"b": 40}, {})  # within the interval
    assert dynamic.rebalance(60.0, {"b": 40}, {})
    assert dict(dynamic.quotas.slots) == {"a": 1, "b": 9}


def test_predictive_quotas_follow_the_forecast_ahead_of_the_queue() -> None:
    forecast = {"a": 0.0, "b": 8.0}
    alloc = Allocation(
        "predictive", "tribe", 10, {"a": 1.0, "b": 1.0}, forecaster=lambda u, _t: forecast[u]
    )
    alloc.rebalance(0.0, {}, {})
    assert dict(alloc.quotas.slots) == {"a": 1, "b": 9}
    with pytest.raises(SchedulingError, match="needs a forecaster"):
        Allocation("predictive", "tribe", 10, {"a": 1.0})
    with pytest.raises(SchedulingError, match="unknown allocation mode"):
        Allocation("greedy", "tribe", 10, {"a": 1.0})


def test_forecast_uses_holt_winters_on_two_seasons_and_follows_the_season() -> None:
    season = [0.0, 0.0, 10.0, 20.0, 10.0, 0.0]
    fc = forecast_demand(season * 4, season=6, horizon=6)
    assert fc.method == HOLT_WINTERS
    assert all(v >= 0 for v in fc.values)
    assert fc.at(3) > fc.at(0) + 10  # the peak is forecast where it recurs
    assert forecast_demand(season, season=6, horizon=2).method == "seasonal mean"
    short = forecast_demand([3.0], season=6, horizon=2)
    assert short.method == "last value" and short.at(5) == 3.0
    assert math.isclose(forecast_demand([], 6, 1).at(0), 0.0)
