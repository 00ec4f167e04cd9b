"""Forecasts of each unit's demand from its recorded history, for predictive allocation.

Demand is counted in buckets (agent-seconds asked for per hour, say). A unit with at least
two seasons of history is fitted with Holt-Winters exponential smoothing
(``statsmodels.tsa.holtwinters.ExponentialSmoothing``: additive daily seasonality, no
trend); a shorter history falls back to the mean of the same bucket of earlier seasons, or
to the last value. Forecasts are never negative.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

HOLT_WINTERS = "statsmodels ExponentialSmoothing (Holt-Winters, additive seasonal, no trend)"
"""The forecasting method, as the docs and the benchmark report name it."""


@dataclass(frozen=True)
class DemandForecast:
    """A unit's forecast demand for the buckets after its history."""

    values: tuple[float, ...]
    method: str

    def at(self, step: int) -> float:
        """The forecast ``step`` buckets ahead (0: the next bucket); the last one beyond."""
        if not self.values:
            return 0.0
        return self.values[min(step, len(self.values) - 1)]


def forecast_demand(history: Sequence[float], season: int, horizon: int) -> DemandForecast:
    """Forecast ``horizon`` buckets after ``history`` (one value per bucket, oldest first),
    with seasons of ``season`` buckets."""
    if len(history) >= 2 * season and any(history):
        return _holt_winters(history, season, horizon)
    if len(history) >= season:
        seasons = len(history) // season
        values = []
        for step in range(horizon):
            index = (len(history) + step) % season
            same = [history[s * season + index] for s in range(seasons)]
            values.append(sum(same) / len(same))
        return DemandForecast(tuple(values), "seasonal mean")
    last = float(history[-1]) if history else 0.0
    return DemandForecast((last,) * horizon, "last value")


def _holt_winters(history: Sequence[float], season: int, horizon: int) -> DemandForecast:
    with warnings.catch_warnings():
        # statsmodels 0.14 uses pandas helpers pandas 3 deprecates (a warning on import), and
        # short, spiky demand series often end the optimiser early; the fit is still usable.
        warnings.simplefilter("ignore")
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        model = ExponentialSmoothing(
            [float(v) for v in history],
            trend=None,
            seasonal="add",
            seasonal_periods=season,
            initialization_method="estimated",
        )
        fitted = model.fit(optimized=True)
        values = fitted.forecast(horizon)
    return DemandForecast(tuple(max(float(v), 0.0) for v in values), HOLT_WINTERS)
