"""The alerts page names each alert's indicator and lists every early-warning indicator
with how it is computed and the threshold in force (the budget burn rate and the engine's
run and step durations among them)."""

from __future__ import annotations

import pytest

from orchestra.analytics import INDICATORS
from tests.analytics.fixtures import budget
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


async def test_the_alerts_page_shows_a_units_budget_burn_to_those_who_may_see_it(
    fresh: Seeded,
) -> None:
    budget(fresh.database, "alice-day", "developer", "alice", 1, "day")
    table = "/dashboard/alerts?unit=alice&format=json&table=budget-burn"
    async with client(fresh, "lead") as c:
        burns = (await c.get(table)).json()
        page = (await c.get("/dashboard/alerts?unit=alice")).text
    async with client(fresh, "carol") as c:
        refused = await c.get("/dashboard/alerts?unit=alice")
    async with client(fresh, "root") as c:
        organisation = (await c.get("/dashboard/alerts?format=json&table=budget-burn")).json()
    (row,) = burns["rows"]
    # the seed's calls of alice today (about $2, unless the day turned since) against $1
    assert (row["Budget"], row["Scope"], row["Cap USD"]) == ("alice-day", "developer", 1.0)
    assert row["Used"] == f"{row['Spent USD'] / 1.0:.1%}"
    assert row["Rate USD/day"] != "unknown" and row["Reaches the cap"] != "unknown"
    assert "Budget burn (alice)" in page
    assert refused.status_code == 403
    (org,) = organisation["rows"]  # the seed's organisation budget
    assert (org["Budget"], org["Scope"], org["Subject"]) == ("acme-month", "org", "*")
