"""Retrieval quality on a labelled query set: recall@k and MRR per search mode.

A query is answered at rank r when an entry whose title is one of its targets is the
r-th hit (window suffixes such as `` (part 2)`` and the `` (class)`` marker are ignored).
recall@k is the fraction of queries answered within the first k hits; MRR@10 is the mean
of 1/r (0 when unanswered within 10 hits). :func:`bootstrap` gives their confidence
intervals by resampling queries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from orchestra.knowledge.models import SearchMode
from orchestra.knowledge.store import KnowledgeStore

_PART = re.compile(r"( \(class\))?( \(part \d+\))?$")


@dataclass(frozen=True)
class LabelledQuery:
    """A query and the entry titles that answer it."""

    query: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class RetrievalMetrics:
    """Quality of one search mode over a query set."""

    mode: str
    queries: int
    recall_at_5: float
    recall_at_10: float
    mrr: float
    ranks: tuple[int | None, ...]
    """Rank of the first relevant hit per query (None when not in the top ``depth``)."""


def load_queries(path: Path) -> list[LabelledQuery]:
    """Queries from a JSON file ``{"queries": [{"query": ..., "targets": [...]}]}``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [LabelledQuery(q["query"], tuple(q["targets"])) for q in data["queries"]]


def target_key(title: str) -> str:
    """A title without its `` (class)`` and `` (part n)`` markers, as labels name it."""
    return _PART.sub("", title)


def first_relevant_rank(titles: Sequence[str], targets: Sequence[str]) -> int | None:
    """1-based rank of the first title in ``targets``, or None."""
    wanted = {target_key(t) for t in targets}
    for rank, title in enumerate(titles, start=1):
        if target_key(title) in wanted:
            return rank
    return None


def evaluate(
    store: KnowledgeStore,
    queries: Sequence[LabelledQuery],
    mode: SearchMode,
    *,
    project: str | None = None,
    depth: int = 10,
) -> RetrievalMetrics:
    """Run every query in ``mode`` and score the rankings."""
    ranks: list[int | None] = []
    for item in queries:
        hits = store.search(item.query, project=project, k=depth, mode=mode)
        ranks.append(first_relevant_rank([h.entry.title for h in hits], item.targets))
    return metrics_from_ranks(mode, ranks)


def metrics_from_ranks(mode: str, ranks: Sequence[int | None]) -> RetrievalMetrics:
    """recall@5, recall@10 and MRR@10 from the first relevant rank of each query."""
    n = max(1, len(ranks))
    return RetrievalMetrics(
        mode=mode,
        queries=len(ranks),
        recall_at_5=sum(1 for r in ranks if r is not None and r <= 5) / n,
        recall_at_10=sum(1 for r in ranks if r is not None and r <= 10) / n,
        mrr=sum(1.0 / r for r in ranks if r is not None and r <= 10) / n,
        ranks=tuple(ranks),
    )


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap confidence interval."""

    value: float
    low: float
    high: float


def _per_query(ranks: Sequence[int | None]) -> npt.NDArray[np.float64]:
    """Rows recall@5, recall@10, reciprocal rank (0 past 10), one column per query."""
    r = np.array([0 if x is None or x > 10 else x for x in ranks], dtype=np.float64)
    found = r > 0
    return np.stack(
        [found & (r <= 5), found, np.where(found, 1.0 / np.where(found, r, 1.0), 0.0)]
    ).astype(np.float64)


def bootstrap(
    ranks: Sequence[int | None], *, samples: int = 2000, seed: int = 17, level: float = 0.95
) -> dict[str, Interval]:
    """recall@5, recall@10 and MRR@10 with percentile bootstrap intervals over queries.

    Queries are resampled with replacement ``samples`` times from a fixed ``seed``, so
    the same ranks always give the same intervals.
    """
    return _intervals(_per_query(ranks), samples, seed, level)


def paired_difference(
    better: Sequence[int | None],
    worse: Sequence[int | None],
    *,
    samples: int = 2000,
    seed: int = 17,
    level: float = 0.95,
) -> dict[str, Interval]:
    """Bootstrap interval of ``better - worse`` per metric, resampling queries in pairs.

    Both rank lists must be over the same queries in the same order. The interval says
    whether a difference between two modes is more than the choice of queries.
    """
    if len(better) != len(worse):
        raise ValueError("rank lists must cover the same queries")
    return _intervals(_per_query(better) - _per_query(worse), samples, seed, level)


def _intervals(
    values: npt.NDArray[np.float64], samples: int, seed: int, level: float
) -> dict[str, Interval]:
    """Mean of each row of ``values`` and its percentile bootstrap interval over columns."""
    n = values.shape[1]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(samples, n))
    means = values[:, picks].mean(axis=2)  # (metrics, samples)
    tail = (1.0 - level) / 2 * 100
    low = np.percentile(means, tail, axis=1)
    high = np.percentile(means, 100 - tail, axis=1)
    point = values.mean(axis=1)
    return {
        name: Interval(float(point[i]), float(low[i]), float(high[i]))
        for i, name in enumerate(METRICS)
    }


METRICS = ("recall@5", "recall@10", "mrr")
"""The metrics :func:`bootstrap` and :func:`paired_difference` report, in this order."""


@dataclass(frozen=True)
class FixtureEntry:
    """A knowledge entry a labelled set stores before it is queried (decisions, conventions)."""

    title: str
    kind: str
    text: str


@dataclass(frozen=True)
class LabelledSet:
    """A named set of labelled queries over one corpus."""

    name: str
    queries: tuple[LabelledQuery, ...]
    package: str | None = None
    """The installed Python package whose source is the corpus (None: ``entries`` are)."""
    distribution: str | None = None
    """The pinned distribution the labels were written against, e.g. ``toolz==1.2.0``."""
    entries: tuple[FixtureEntry, ...] = ()


def load_set(path: Path) -> LabelledSet:
    """A labelled set from JSON: ``name``, ``queries``, and ``package`` or ``entries``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return LabelledSet(
        name=data["name"],
        queries=tuple(LabelledQuery(q["query"], tuple(q["targets"])) for q in data["queries"]),
        package=data.get("package"),
        distribution=data.get("distribution"),
        entries=tuple(
            FixtureEntry(e["title"], e["kind"], e["text"]) for e in data.get("entries", ())
        ),
    )
