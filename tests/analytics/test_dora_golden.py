"""Golden fixtures for the four DORA keys, including the public tools' three change
failure rate mistakes.

The fixture: 23 production deployments in November 2026, each of one merged change, plus
23 merged changes never deployed (46 changes). Four deployments failed: D1 reported
``failure``; D2 and D4 each have one incident naming them; D3 has two. Two more incidents
name no deployment (an outage of a dependency). So:

- right: failed deployments ÷ deployments = 4 / 23 = 17.4 %;
- mistake 1, dividing by changes: 4 / 46 = 8.7 %;
- mistake 2, counting incidents instead of failed deployments: 6 / 23 = 26.1 %;
- mistake 3, counting D3 once per incident (a join of deployments and incidents): 5 / 23
  = 21.7 %.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestra.analytics import Asker, kpi_report, link_all, parse_period, rate
from orchestra.store import Database
from tests.analytics.fixtures import T0, deployment_status, github, issue, pull_request

ADMIN = Asker("root", frozenset({"admin"}))
NOVEMBER = parse_period("2026-11")


def sha(i: int) -> str:
    return f"{i:02d}" + "a" * 38


@pytest.fixture
def deployed(db: Database) -> Database:
    for i in range(1, 24):
        at = T0 + timedelta(days=i)
        merged = at - timedelta(hours=i)  # lead time i hours from merge; opened 2 h earlier
        github(
            db,
            "pull_request",
            pull_request(i, opened=merged - timedelta(hours=2), merged=merged, sha=sha(i)),
        )
        github(
            db,
            "deployment_status",
            deployment_status(i, sha(i), "failure" if i == 1 else "success", at),
        )
    for j in range(24, 47):  # merged, never deployed
        github(
            db,
            "pull_request",
            pull_request(j, opened=T0, merged=T0 + timedelta(hours=1), sha="b" * 40),
        )
    incidents = [(2, sha(2)), (3, sha(3)), (4, sha(3)), (5, sha(4)), (6, ""), (7, "")]
    for number, named in incidents:
        opened = T0 + timedelta(days=number + 1)
        github(
            db,
            "issues",
            issue(
                number,
                labels=["incident"],
                opened=opened,
                closed=opened + timedelta(hours=number),
                body=f"Caused by the deploy of {named}" if named else "DNS",
            ),
        )
    link_all(db)
    return db


def test_change_failure_rate_is_failed_deployments_over_deployments(deployed: Database) -> None:
    fig = kpi_report(deployed, ADMIN, period=NOVEMBER).figures["change_failure_rate"]
    assert fig.value == pytest.approx(4 / 23)
    assert round(fig.value * 100, 1) == 17.4
    assert fig.detail["failed"] == 4 and fig.detail["deployments"] == 23
    failed = fig.detail["failed_rows"]
    assert len(failed) == len(set(failed)) == 4  # D3 and its two incidents: once
    assert "deployment:github:acme/shop:3" in failed and "deployment:github:acme/shop:1" in failed
    assert len(fig.rows) == 23  # the drill-down lists every deployment counted


def test_the_three_public_mistakes_give_other_numbers(deployed: Database) -> None:
    report = kpi_report(deployed, ADMIN, period=NOVEMBER)
    right = report.figures["change_failure_rate"].value
    merged = report.figures["velocity"].detail["merged"]
    incidents = 6
    assert merged == 46
    by_changes, by_incidents, joined = 4 / merged, incidents / 23, 5 / 23
    assert round(by_changes * 100, 1) == 8.7
    assert round(by_incidents * 100, 1) == 26.1
    assert round(joined * 100, 1) == 21.7
    assert right not in (
        pytest.approx(by_changes),
        pytest.approx(by_incidents),
        pytest.approx(joined),
    )


def test_the_other_dora_keys(deployed: Database) -> None:
    report = kpi_report(deployed, ADMIN, period=NOVEMBER)
    freq = report.figures["deployment_frequency"]
    assert freq.detail["deployments"] == 22  # D1 failed
    assert freq.value == pytest.approx(22 / (30 / 7))
    # lead time: opened 2 h before the merge, deployed i h after it, for the 22 successes
    lead = report.figures["lead_time_for_changes"]
    assert lead.value == pytest.approx(statistics_median([i + 2 for i in range(2, 24)]))
    assert lead.detail["sample"] == 22
    ttr = report.figures["time_to_restore"]
    assert ttr.value == pytest.approx(4.5)  # incidents took 2..7 hours
    assert report.bands["time_to_restore"] is not None
    assert report.bands["time_to_restore"].band == "high"


def statistics_median(values: list[int]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return (ordered[mid - 1] + ordered[mid]) / 2 if len(ordered) % 2 == 0 else ordered[mid]


def test_no_deployments_is_unknown_not_zero(db: Database) -> None:
    report = kpi_report(db, ADMIN, period=NOVEMBER)
    for key in (
        "deployment_frequency",
        "change_failure_rate",
        "lead_time_for_changes",
        "time_to_restore",
    ):
        fig = report.figures[key]
        assert fig.value is None and fig.unknown and fig.rows == ()
        assert report.bands[key] is None


@pytest.mark.parametrize(
    ("version", "kpi", "value", "band"),
    [
        ("2023", "change_failure_rate", 0.174, "low"),
        ("2021", "change_failure_rate", 0.174, "high"),
        ("2023", "deployment_frequency", 10.0, "elite"),
        ("2023", "lead_time_for_changes", 30.0, "high"),
        ("2021", "lead_time_for_changes", 0.5, "elite"),
        ("2021", "change_failure_rate", 0.45, "low"),  # above every label: the lowest band
        ("2023", "time_to_restore", 500.0, "low"),
        ("2023", "deployment_frequency", 0.1, "low"),
    ],
)
def test_bands_come_from_the_versioned_files(
    version: str, kpi: str, value: float, band: str
) -> None:
    found = rate(kpi, value, version)
    assert found is not None and (found.version, found.band) == (version, band)


def test_band_files_cite_their_sources() -> None:
    from orchestra.analytics import band_versions, load_bands

    for version in band_versions():
        data = load_bands(version)
        assert data["sources"], version
        assert all("http" in source for source in data["sources"])
        assert rate("lead_time_for_changes", 10_000.0, version) is not None  # no gap at the end


def test_2023_low_labels_are_the_reports_words() -> None:
    low = rate("lead_time_for_changes", 2000.0, "2023")
    assert low is not None and low.label == "Between one week and one month"
