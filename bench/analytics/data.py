"""Synthetic but skewed ledger data: 100 developers over one year, and their runs.

Skew: developer activity follows a Zipf-like law (the busiest developer makes ~20x the
calls of the quietest), weekends carry 15 % of a weekday's calls, working hours most of a
day's, adoption grows over the year (the last month ~3x the first), agents and models are
unevenly used, 60 % of calls belong to one of the runs. Ids are time-ordered (like UUIDv7);
everything is drawn from a seeded generator, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

DEVELOPERS = 100
SQUADS = 12
AGENTS = ("coder", "tester", "reviewer", "planner", "docs", "security", "refactorer", "triage")
AGENT_W = (0.34, 0.22, 0.14, 0.1, 0.07, 0.05, 0.05, 0.03)
AGENT_TIER = (1, 1, 0, 0, 2, 0, 1, 2)  # 0 opus, 1 sonnet, 2 haiku
MODELS = ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "qwen2.5-coder-32b")
PROVIDERS = ("anthropic", "anthropic", "anthropic", "local")
TIERS = ("opus", "sonnet", "haiku")
PRICE_IN = (15_000, 3_000, 800, 0)  # nano-dollars per token
PRICE_OUT = (75_000, 15_000, 4_000, 0)


@dataclass(frozen=True)
class Org:
    """Who the developers are."""

    developer: list[str]
    squad: list[str]
    tribe: list[str]
    division: list[str]


def org() -> Org:
    """100 developers in 12 squads, 4 tribes, 2 divisions."""
    devs = [f"dev-{i:03d}" for i in range(DEVELOPERS)]
    squads = [f"squad-{i % SQUADS:02d}" for i in range(DEVELOPERS)]
    tribes = [f"tribe-{(i % SQUADS) % 4}" for i in range(DEVELOPERS)]
    divisions = [f"division-{((i % SQUADS) % 4) % 2}" for i in range(DEVELOPERS)]
    return Org(devs, squads, tribes, divisions)


@dataclass
class Ledger:
    """The generated calls as column arrays, sorted by start time."""

    start_us: np.ndarray
    dev: np.ndarray
    agent: np.ndarray
    model: np.ndarray
    second_key: np.ndarray
    run: np.ndarray  # -1: no run
    tokens_in: np.ndarray
    tokens_out: np.ndarray
    cache_read: np.ndarray
    cost: np.ndarray
    latency: np.ndarray
    outcome: np.ndarray  # 0 ok, 1 error, 2 rate_limited
    runs: int


def generate(rows: int, runs: int, end: datetime, seed: int = 13) -> Ledger:
    """``rows`` calls over the 365 days before ``end`` (a UTC midnight) and ``runs`` runs."""
    rng = np.random.default_rng(seed)
    w = 1 / np.arange(1, DEVELOPERS + 1) ** 0.65
    dev = rng.choice(DEVELOPERS, rows, p=w / w.sum())
    start = end - timedelta(days=365)
    days = np.arange(365)
    weekday = np.array([(start + timedelta(days=int(d))).weekday() for d in days])
    dw = np.where(weekday >= 5, 0.15, 1.0) * (0.5 + 1.0 * days / 365)
    day = rng.choice(365, rows, p=dw / dw.sum())
    hw = np.array(
        [1, 1, 1, 1, 1, 2, 4, 8, 20, 30, 32, 30, 22, 28, 32, 32, 28, 20, 10, 6, 4, 3, 2, 1.0]
    )
    hour = rng.choice(24, rows, p=hw / hw.sum())
    t0 = int(start.timestamp() * 1_000_000)
    start_us = t0 + (day * 86400 + hour * 3600) * 1_000_000 + rng.integers(0, 3_600_000_000, rows)
    order = np.argsort(start_us, kind="stable")
    start_us, dev = start_us[order], dev[order]
    agent = rng.choice(len(AGENTS), rows, p=AGENT_W)
    model = np.array(AGENT_TIER)[agent]
    model = np.where(rng.random(rows) < 0.08, 3, model)  # a local model now and then
    second_key = rng.random(rows) < 0.2
    # Runs: each developer's calls, in time order, split into runs in proportion to their
    # activity; 60 % of calls belong to their run.
    dev_order = np.argsort(dev, kind="stable")
    counts = np.bincount(dev, minlength=DEVELOPERS)
    per_dev = np.maximum(1, np.round(runs * counts / rows)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(per_dev)[:-1]])
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(rows, dtype=np.int64)
    rank[dev_order] = np.arange(rows) - np.repeat(first, counts)
    run = offsets[dev] + (rank * per_dev[dev]) // np.maximum(counts[dev], 1)
    run = np.where(rng.random(rows) < 0.6, run, -1)
    tokens_in = rng.lognormal(7.5, 1.0, rows).astype(np.int64) + 10
    tokens_out = rng.lognormal(6.0, 0.9, rows).astype(np.int64) + 1
    cache_read = np.where(rng.random(rows) < 0.5, tokens_in * 3, 0)
    cost = tokens_in * np.array(PRICE_IN)[model] + tokens_out * np.array(PRICE_OUT)[model]
    latency = rng.lognormal(7.3, 0.6, rows)
    u = rng.random(rows)
    outcome = np.where(u < 0.02, 1, np.where(u < 0.03, 2, 0))
    return Ledger(
        start_us,
        dev,
        agent,
        model,
        second_key,
        run,
        tokens_in,
        tokens_out,
        cache_read,
        cost,
        latency,
        outcome,
        int(per_dev.sum()),
    )


STAGE_COLUMNS = (
    "i",
    "start_us",
    "latency_us",
    "dev",
    "agent",
    "model",
    "second_key",
    "run",
    "tokens_in",
    "tokens_out",
    "cache_read",
    "cost",
    "outcome",
)
"""The staging table's columns: the calls as numbers, turned into ledger rows in SQL."""


def staged(data: Ledger, lo: int, hi: int) -> list[tuple[int, ...]]:
    """Calls ``lo:hi`` as staging rows (plain integers: cheap to bind or copy)."""
    latency_us = (data.latency[lo:hi] * 1000).astype(np.int64)
    cols = [
        np.arange(lo, hi),
        data.start_us[lo:hi],
        latency_us,
        data.dev[lo:hi],
        data.agent[lo:hi],
        data.model[lo:hi],
        data.second_key[lo:hi].astype(np.int64),
        data.run[lo:hi],
        data.tokens_in[lo:hi],
        data.tokens_out[lo:hi],
        data.cache_read[lo:hi],
        data.cost[lo:hi],
        data.outcome[lo:hi],
    ]
    return list(zip(*(c.tolist() for c in cols), strict=True))


def dimensions(people: Org) -> dict[str, list[tuple[object, ...]]]:
    """The small tables the staging rows' numbers name."""
    return {
        "bench_dev": [
            (d, people.developer[d], people.squad[d], people.tribe[d], people.division[d])
            for d in range(DEVELOPERS)
        ],
        "bench_agent": [
            (a, AGENTS[a], TIERS[AGENT_TIER[a]], MODELS[AGENT_TIER[a]]) for a in range(len(AGENTS))
        ],
        "bench_model": [(m, MODELS[m], PROVIDERS[m]) for m in range(len(MODELS))],
        "bench_outcome": [(0, "ok", None), (1, "error", "upstream_529"), (2, "rate_limited", None)],
    }


DIMENSION_COLUMNS = {
    "bench_dev": "d integer, developer text, squad text, tribe text, division text",
    "bench_agent": "a integer, agent text, tier text, requested text",
    "bench_model": "m integer, served text, provider text",
    "bench_outcome": "o integer, outcome text, error_type text",
}


def _at(us: str, dialect: str) -> str:
    if dialect == "sqlite":
        return (
            f"strftime('%Y-%m-%d %H:%M:%S', {us} / 1000000, 'unixepoch') "
            f"|| printf('.%06d', {us} % 1000000)"
        )
    return f"to_timestamp({us} / 1000000.0)"


def ledger_select(dialect: str) -> str:
    """The ``SELECT`` turning staging rows into ``gateway_ledger`` rows (in
    :data:`COLUMNS_SQL` order)."""
    if dialect == "sqlite":
        ident = "printf('%032x', s.i)"
        run = "CASE WHEN s.run >= 0 THEN printf('run-%06d', s.run) END"
        key = "printf('key-%03d', s.dev) || CASE WHEN s.second_key = 1 THEN 'b' ELSE '' END"
    else:
        ident = "lpad(to_hex(s.i), 32, '0')"
        run = "CASE WHEN s.run >= 0 THEN 'run-' || lpad(s.run::text, 6, '0') END"
        key = (
            "'key-' || lpad(s.dev::text, 3, '0') || CASE WHEN s.second_key = 1 THEN 'b' ELSE '' END"
        )
    started, ended = _at("s.start_us", dialect), _at("(s.start_us + s.latency_us)", dialect)
    return (
        f"SELECT {ident}, {started}, {ended}, 'acme', "  # noqa: S608
        f"d.division, d.tribe, d.squad, d.developer, {key}, a.agent, {run}, NULL, a.tier, "
        "a.requested, m.served, m.provider, s.tokens_in, s.tokens_out, s.cache_read, 0, s.cost, "
        "s.latency_us / 1000.0, NULL, 0, '', o.outcome, o.error_type, false "
        "FROM bench_calls s JOIN bench_dev d ON d.d = s.dev JOIN bench_agent a ON a.a = s.agent "
        "JOIN bench_model m ON m.m = s.model JOIN bench_outcome o ON o.o = s.outcome ORDER BY s.i"
    )


COLUMNS_SQL = (
    "id, started_at, ended_at, org, division, tribe, squad, developer, key_id, agent, run_id, "
    "step, tier, requested_model, served_model, provider, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, cost_nano, latency_ms, ttft_ms, retries, "
    "fallback_path, outcome, error_type, stream"
)
"""``gateway_ledger``'s columns in the order :func:`rows` gives them."""
