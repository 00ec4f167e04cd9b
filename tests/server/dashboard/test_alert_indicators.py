"""The alerts page names each alert's indicator and lists every early-warning indicator
with how it is computed and the threshold in force (the budget burn rate and the engine's
run and step durations among them)."""

from __future__ import annotations

import pytest

from orchestra.analytics import INDICATORS
from tests.server.dashboard.seed import Seeded
from tests.server.dashboard.test_pages import client

pytestmark = pytest.mark.anyio


async def test_the_alerts_page_lists_the_indicators_and_each_alerts_indicator(
    seeded: Seeded,
) -> None:
    async with client(seeded, "alice") as c:
        page = (await c.get("/dashboard/alerts")).text
        alerts = (await c.get("/dashboard/alerts?format=json&table=alerts")).json()
        listed = (await c.get("/dashboard/alerts?format=json&table=indicators")).json()
    assert {a["Indicator"] for a in alerts["rows"]} == {"cycle_time", "cost_anomaly"}
    rows = {r["Indicator"]: r for r in listed["rows"]}
    assert list(rows) == [i.name for i in INDICATORS]
    burn = rows["budget_burn_rate"]
    assert burn["Threshold"] == 0.9 and "before the window ends" in burn["How"]
    assert rows["run_duration"]["Unit"] == "minutes" and rows["run_duration"]["Worse when"] == "up"
    assert rows["step_duration"]["Threshold"] == 900.0
    assert rows["daily_cost"]["Threshold"] == "none"  # not "unknown": it has none
    assert "Early-warning indicators and their thresholds" in page
