"""CLI: orchestra capacity — how many developers a local model host serves within an SLO.

Thin: parse, read the ledger through :mod:`orchestra.accounting`, call
:func:`orchestra.capacity.plan_capacity`, present (table, ``--json``, the SVG chart).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestra.accounting import Accounting, LedgerEntry
from orchestra.accounting.store import utcnow
from orchestra.capacity import (
    DEFAULT_PROMPT,
    SLO,
    CapacityPlan,
    SweepSettings,
    latency_chart_svg,
    metrics_url_for,
    plan_capacity,
)
from orchestra.cli.claude_code import gateway_url
from orchestra.cli.output import console, error_console, fail, print_json
from orchestra.config import default_database_url, load_config
from orchestra.config.paths import existing_database_url
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import OrchestraError
from orchestra.store import open_database


def _levels(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise fail(
            f"--concurrency {text!r} is not a list of whole numbers", "e.g. --concurrency 1,2,4,8"
        ) from None


def _history(
    config: OrchestraConfig, database: str | None, days: int
) -> tuple[list[LedgerEntry], str | None]:
    """The ledger's calls of the last ``days`` days, or none and why."""
    try:
        url = existing_database_url(database or default_database_url())
    except OrchestraError as exc:
        return [], exc.message
    db = open_database(url)
    acc = Accounting(db, config)
    try:
        return acc.ledger.entries(since=utcnow() - timedelta(days=days)), None
    finally:
        acc.close()
        db.dispose()


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _unknown(value: object, reason: str | None) -> str:
    return f"unknown ({reason})" if value is None else str(value)


def _present(plan: CapacityPlan, chart: Path | None, ledger_note: str | None) -> None:
    out = console()
    table = Table(
        "clients",
        "requests",
        "errors",
        "e2e p50",
        "p90",
        "p99",
        "TTFT p50",
        "ITL p50",
        "goodput/s",
        "queue max",
        "SLO",
        title=f"Capacity of {plan.target.get('model')} through the gateway ({plan.slo.describe()})",
    )
    for level in plan.levels:
        queue = level.gauges.queue_max
        table.add_row(
            str(level.concurrency),
            str(len(level.samples)),
            str(level.errors),
            _seconds(level.e2e(50)),
            _seconds(level.e2e(90)),
            _seconds(level.e2e(99)),
            _seconds(level.ttft(50)),
            _seconds(level.itl(50)),
            f"{level.goodput(plan.slo.seconds):.2f}",
            "unknown" if queue is None else f"{queue:g}",
            "met" if plan.slo.met_by(level) else "missed",
        )
    out.print(table)
    peak = plan.peak
    rate = peak.per_developer_rps
    goodput = plan.goodput
    lines = [
        f"max concurrency within the SLO: {_unknown(plan.max_concurrency, 'no level met it')}",
        f"goodput there: {'unknown' if goodput is None else f'{goodput:.2f} requests/s'}",
        "peak-hour load per developer: "
        + (
            _unknown(None, ledger_note or peak.reason)
            if rate is None
            else f"{rate * 3600:.1f} requests/h ({peak.developers} developers, "
            f"{peak.hour:%Y-%m-%d %H:00} UTC)"
        ),
        f"developers per host: {_unknown(plan.developers_per_host, 'needs both of the above')}",
        "payback: "
        + (
            _unknown(None, plan.payback.reason)
            if plan.payback.months is None
            else f"{plan.payback.months:.1f} months "
            f"(saves ${plan.payback.monthly_saving_usd or 0:,.2f} a month)"
        ),
    ]
    for line in lines:
        out.print(line, highlight=False)
    if chart is not None:
        out.print(f"chart: {chart}", highlight=False)


def capacity(
    model: Annotated[
        str, typer.Option("--model", help="Model name the gateway routes to the local host.")
    ],
    key: Annotated[
        str,
        typer.Option(
            "--key", envvar="ORCHESTRA_API_KEY", help="Orchestra API key (or ORCHESTRA_API_KEY)."
        ),
    ],
    gateway: Annotated[
        str | None,
        typer.Option("--gateway-url", help="Gateway URL (default: from gateway.host/port)."),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option("--concurrency", help="Levels to measure, e.g. 1,2,4,8 (default: search)."),
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", help="Ceiling of the search.")
    ] = 32,
    duration: Annotated[
        float, typer.Option("--duration", help="Seconds each level sends requests.")
    ] = 10.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per reply.")] = 64,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="The user message of every request.")
    ] = None,
    slo_seconds: Annotated[
        float, typer.Option("--slo-seconds", help="End-to-end latency bound.")
    ] = 5.0,
    slo_percentile: Annotated[
        float, typer.Option("--slo-percentile", help="Percentile held to the bound.")
    ] = 90.0,
    max_error_rate: Annotated[
        float, typer.Option("--max-error-rate", help="Failed requests a level may have (0-1).")
    ] = 0.0,
    metrics_url: Annotated[
        str | None,
        typer.Option(
            "--metrics-url",
            help="The server's Prometheus /metrics (default: from the model's provider).",
        ),
    ] = None,
    host_price: Annotated[
        float | None, typer.Option("--host-price", help="What the host costs, USD.")
    ] = None,
    host_running: Annotated[
        float, typer.Option("--host-running-cost", help="Running cost, USD a month.")
    ] = 0.0,
    ledger_days: Annotated[
        int, typer.Option("--ledger-days", help="Ledger history to read, days.")
    ] = 30,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Write the latency curve here (SVG).")
    ] = Path("capacity.svg"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    config_path: Annotated[
        Path | None, typer.Option("--config", help="orchestra.yaml to use.")
    ] = None,
    database: Annotated[
        str | None, typer.Option("--database", help="Database URL of the ledger.")
    ] = None,
) -> None:
    """Sweep concurrency through the gateway against a local model server; report the
    latency curve, the highest concurrency within the SLO, developers per host and payback."""
    try:
        config = load_config(config_path)
        settings = SweepSettings(
            gateway_url=gateway or gateway_url(config),
            key=key,
            model=model,
            slo=SLO(slo_seconds, slo_percentile, max_error_rate),
            levels=_levels(concurrency),
            ceiling=max_concurrency,
            duration_s=duration,
            max_tokens=max_tokens,
            prompt=prompt or DEFAULT_PROMPT,
            metrics_url=metrics_url or metrics_url_for(config, model),
            host_price_usd=host_price,
            host_running_usd_month=host_running,
        )
        entries, ledger_note = _history(config, database, ledger_days)
        if not as_json:
            error_console().print(f"sweeping {model} through {settings.gateway_url} …")
        plan = asyncio.run(plan_capacity(settings, entries))
    except OrchestraError as exc:
        raise fail(exc) from exc
    if chart is not None:
        chart.write_text(latency_chart_svg(plan, f"{model}: latency against concurrency"))
    if as_json:
        data = plan.to_json()
        data["chart"] = None if chart is None else str(chart)
        data["ledger_note"] = ledger_note
        print_json(data)
        return
    _present(plan, chart, ledger_note)


def register(app: typer.Typer) -> None:
    """Add ``orchestra capacity`` to the root application."""
    app.command("capacity")(capacity)
