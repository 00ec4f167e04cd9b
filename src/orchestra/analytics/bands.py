"""DORA performance bands, as versioned data files (``bands/dora-<version>.json``).

The reports redraw the bands every year; code never holds the thresholds. Adding a year is
adding a file. A value is placed in the first band, best first, whose bound it meets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestra.analytics.datafiles import data_versions, load_data

DEFAULT_BANDS = "2023"


@dataclass(frozen=True)
class Band:
    """Where a figure falls in one report's bands."""

    version: str
    band: str
    label: str


def band_versions() -> list[str]:
    """The versions shipped (``2021``, ``2023`` ...)."""
    return data_versions("bands", "dora")


def load_bands(version: str = DEFAULT_BANDS) -> dict[str, Any]:
    """The bands file of ``version``."""
    return load_data("bands", "dora", version, "DORA bands")


def rate(kpi: str, value: float | None, version: str = DEFAULT_BANDS) -> Band | None:
    """The band ``value`` of ``kpi`` falls in; ``None`` for an unknown value or a KPI the
    report does not band."""
    bands = load_bands(version)["keys"].get(kpi)
    if value is None or bands is None:
        return None
    for item in bands:
        if "min" in item and value >= item["min"]:
            return Band(version, item["band"], item["label"])
        if "max" in item and (item["max"] is None or value <= item["max"]):
            return Band(version, item["band"], item["label"])
    return None
