"""Organisation-wide scheduling: topologies as policies choosing who gets the next agent
slot, quotas per unit under the stage's cap, and static, dynamic or predictive allocation.

Pure: no clock, no database. The engine and ``bench/scheduling`` drive it.
"""

from orchestra.scheduling.allocation import (
    ALLOCATION_MODES,
    Allocation,
    apportion,
    nested_minimums,
)
from orchestra.scheduling.forecast import HOLT_WINTERS, DemandForecast, forecast_demand
from orchestra.scheduling.grants import forecast_slots, grant_all, hourly_seconds, topology_quotas
from orchestra.scheduling.placements import (
    NO_UNIT,
    check_weights,
    headcounts,
    level_units,
    placements,
    tribes_by_region,
)
from orchestra.scheduling.policies import QUOTA_LEVEL, TOPOLOGIES, next_demand, within_limits
from orchestra.scheduling.units import LEVELS, Demand, Level, Limits, Placement, Quotas, Running

__all__ = [
    "ALLOCATION_MODES",
    "HOLT_WINTERS",
    "LEVELS",
    "NO_UNIT",
    "QUOTA_LEVEL",
    "TOPOLOGIES",
    "Allocation",
    "Demand",
    "DemandForecast",
    "Level",
    "Limits",
    "Placement",
    "Quotas",
    "Running",
    "apportion",
    "check_weights",
    "forecast_demand",
    "forecast_slots",
    "grant_all",
    "headcounts",
    "hourly_seconds",
    "level_units",
    "nested_minimums",
    "next_demand",
    "placements",
    "topology_quotas",
    "tribes_by_region",
    "within_limits",
]
