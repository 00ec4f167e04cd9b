"""DORA performance bands, as versioned data files (``bands/dora-<version>.json``).

The reports redraw the bands every year; code never holds the thresholds. Adding a year is
adding a file. A value is placed in the first band, best first, whose bound it meets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from orchestra.analytics.errors import AnalyticsError

DEFAULT_BANDS = "2023"


@dataclass(frozen=True)
class Band:
    """Where a figure falls in one report's bands."""

    version: str
    band: str
    label: str


def band_versions() -> list[str]:
    """The versions shipped (``2021``, ``2023`` ...)."""
    folder = resources.files("orchestra.analytics") / "bands"
    return sorted(
        p.name.removeprefix("dora-").removesuffix(".json")
        for p in folder.iterdir()
        if p.name.startswith("dora-") and p.name.endswith(".json")
    )


def load_bands(version: str = DEFAULT_BANDS) -> dict[str, Any]:
    """The bands file of ``version``."""
    if version not in band_versions():
        raise AnalyticsError(
            f"no DORA bands for {version!r}",
            hint="one of: " + ", ".join(band_versions()),
        )
    path = resources.files("orchestra.analytics") / "bands" / f"dora-{version}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


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
