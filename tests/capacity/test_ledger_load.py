"""Peak-hour load, cloud spend and payback from ledger entries; the SVG chart; gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orchestra.accounting import Attribution, LedgerEntry
from orchestra.capacity import (
    SLO,
    CapacityPlan,
    InvalidSweep,
    LevelResult,
    RequestSample,
    ServerGauges,
    cloud_spend,
    latency_chart_svg,
    payback,
    peak_load,
    percentile,
    read_gauges,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _call(developer: str | None, at: datetime, cost: str = "0") -> LedgerEntry:
    return LedgerEntry(
        Attribution(developer=developer), "sonnet", started_at=at, cost_usd=Decimal(cost)
    )


def test_the_peak_hour_rate_is_per_developer_active_in_it() -> None:
    entries = [_call("alice", T0 + timedelta(minutes=m)) for m in range(30)]
    entries += [_call("bob", T0 + timedelta(minutes=m, seconds=5)) for m in range(10)]
    entries += [_call("alice", T0 + timedelta(hours=3, minutes=m)) for m in range(20)]
    entries += [_call(None, T0 + timedelta(hours=5, minutes=m)) for m in range(59)]  # no one's
    peak = peak_load(entries)
    assert peak.hour == T0 and peak.requests == 40 and peak.developers == 2
    assert peak.per_developer_rps == pytest.approx(20 / 3600)


def test_no_history_is_unknown_with_its_reason() -> None:
    assert peak_load([]).per_developer_rps is None
    assert "no calls" in (peak_load([]).reason or "")
    local_only = [_call("alice", T0, "0"), _call("bob", T0, "0")]
    assert cloud_spend(local_only).per_developer_month_usd is None
    assert payback(3000, 10, cloud_spend(local_only)).months is None


def test_cloud_spend_per_developer_month_and_payback() -> None:
    # $600 over 10 days by two developers: $30 per developer-day.
    entries = [_call("alice", T0, "100"), _call("bob", T0 + timedelta(days=10), "500")]
    entries.append(_call("carol", T0 + timedelta(days=2), "0"))  # local: not cloud spend
    cloud = cloud_spend(entries)
    monthly = 30 * 365.25 / 12
    assert cloud.per_developer_month_usd == pytest.approx(monthly)
    result = payback(10_000, 4, cloud)
    assert result.months == pytest.approx(10_000 / (4 * monthly), abs=0.01)
    assert payback(10_000, 4, cloud, running_usd_month=10_000).months is None
    assert payback(None, 4, cloud).reason == "no host price given (--host-price)"


def _level(concurrency: int, latencies: list[float], errors: int = 0) -> LevelResult:
    samples = [RequestSample(True, s, s / 4, s / 40) for s in latencies]
    samples += [RequestSample(False, 0.01, error="HTTP 503")] * errors
    return LevelResult(concurrency, 2.0, samples, ServerGauges())


def test_the_slo_judges_the_percentile_and_the_errors() -> None:
    slo = SLO(seconds=1.0, percentile=90)
    assert slo.met_by(_level(1, [0.5] * 10))
    assert not slo.met_by(_level(2, [0.5] * 8 + [1.5] * 2))  # p90 is 1.5
    assert slo.met_by(_level(2, [0.5] * 9 + [1.5]))  # only the p100 misses
    assert not slo.met_by(_level(2, [0.5] * 10, errors=1))
    assert SLO(1.0, 90, 0.1).met_by(_level(2, [0.5] * 10, errors=1))
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([], 90) is None
    with pytest.raises(InvalidSweep):
        SLO(seconds=0)


def test_the_chart_draws_the_three_percentiles_and_the_slo() -> None:
    slo = SLO(seconds=1.0)
    levels = [_level(1, [0.2] * 10), _level(4, [0.6] * 10), _level(8, [1.4] * 10)]
    plan = CapacityPlan(
        slo, levels, peak_load([]), cloud_spend([]), payback(None, None, cloud_spend([]))
    )
    svg = latency_chart_svg(plan)
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    assert "SLO p90 e2e ≤ 1 s" in svg and "max 4 within SLO" in svg


def test_gauges_read_llama_cpp_and_vllm_names() -> None:
    text = (
        "# HELP x\nllamacpp:requests_deferred 3\nllamacpp:requests_processing 2\n"
        'vllm:num_requests_waiting{model_name="m"} 1.0\nother 9\n'
    )
    assert read_gauges(text) == (4.0, 2.0)
    assert read_gauges("") == (None, None)
