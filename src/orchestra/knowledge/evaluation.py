"""Retrieval quality on a labelled query set: recall@k and MRR per search mode.

A query is answered at rank r when an entry whose title is one of its targets is the
r-th hit (window suffixes such as `` (part 2)`` are ignored). recall@k is the fraction of
queries answered within the first k hits; MRR is the mean of 1/r (0 when unanswered
within ``depth`` hits).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestra.knowledge.models import SearchMode
from orchestra.knowledge.store import KnowledgeStore

_PART = re.compile(r" \(part \d+\)$")


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


def first_relevant_rank(titles: Sequence[str], targets: Sequence[str]) -> int | None:
    """1-based rank of the first title in ``targets``, or None."""
    wanted = set(targets)
    for rank, title in enumerate(titles, start=1):
        if _PART.sub("", title) in wanted:
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
    n = len(queries)
    return RetrievalMetrics(
        mode=mode,
        queries=n,
        recall_at_5=sum(1 for r in ranks if r is not None and r <= 5) / n,
        recall_at_10=sum(1 for r in ranks if r is not None and r <= 10) / n,
        mrr=sum(1.0 / r for r in ranks if r is not None) / n,
        ranks=tuple(ranks),
    )
