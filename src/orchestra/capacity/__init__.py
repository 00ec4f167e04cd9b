"""Capacity planning for a local model host (``docs/capacity.md``).

:func:`plan_capacity` sweeps concurrency through the gateway against an OpenAI-compatible
server (llama.cpp's server, Ollama, vLLM), finds the highest level meeting an :class:`SLO`
with its goodput, and turns it into developers per host and the hardware's payback from
what the ledger recorded. :func:`latency_chart_svg` draws the curve.
"""

from orchestra.capacity.chart import latency_chart_svg
from orchestra.capacity.errors import CapacityError, InvalidSweep, TargetUnreachable
from orchestra.capacity.ledger_load import CloudSpend, PeakLoad, cloud_spend, peak_load
from orchestra.capacity.measure import (
    LevelResult,
    LoadShape,
    RequestSample,
    ServerGauges,
    level_json,
    measure_level,
    percentile,
    read_gauges,
)
from orchestra.capacity.plan import SLO, CapacityPlan, Payback, payback, sweep
from orchestra.capacity.planner import DEFAULT_PROMPT, SweepSettings, metrics_url_for, plan_capacity

__all__ = [
    "DEFAULT_PROMPT",
    "SLO",
    "CapacityError",
    "CapacityPlan",
    "CloudSpend",
    "InvalidSweep",
    "LevelResult",
    "LoadShape",
    "Payback",
    "PeakLoad",
    "RequestSample",
    "ServerGauges",
    "SweepSettings",
    "TargetUnreachable",
    "cloud_spend",
    "latency_chart_svg",
    "level_json",
    "measure_level",
    "metrics_url_for",
    "payback",
    "peak_load",
    "percentile",
    "plan_capacity",
    "read_gauges",
    "sweep",
]
