"""Fusing the vector and BM25 rankings into the hybrid ranking.

Two rules, both deterministic (ties go to the best single rank, then first appearance):

- :func:`score_fusion` (hybrid search's rule): each retriever's scores are min-max
  normalised over its own candidates, then combined as ``w * vector + (1 - w) * bm25``
  (a candidate missing from one list gets 0 there). Normalising per query makes the
  combination query-dependent: a BM25 list with one clear winner lifts it, a flat one
  (many entries sharing the query's common words) spreads its weight thin.
- :func:`reciprocal_rank_fusion`: ``sum(weight / (k + rank))``, Cormack, Clarke and
  Büttcher (SIGIR 2009); kept for comparison and for callers that only have ranks.

:data:`HYBRID_VECTOR_WEIGHT` was chosen by measurement on the labelled sets of
``bench/knowledge/sets`` (see docs/knowledge.md, "How fusion was chosen"): with k = 60,
RRF lost to vector search alone on the pooled sets.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_K = 60

HYBRID_VECTOR_WEIGHT = 0.6
"""Weight of the normalised vector score in hybrid search (BM25 gets the rest)."""


def _ordered(scores: dict[K, float], best_rank: dict[K, int]) -> list[tuple[K, float]]:
    order = {key: n for n, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], best_rank[kv[0]], order[kv[0]]))


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], *, k: int = DEFAULT_K, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Fuse ranked id lists into one list of ``(id, score)``, best first.

    Ties are broken by the best single rank an id reached, then by first appearance,
    so the result is deterministic.
    """
    if weights is not None and len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[K, float] = {}
    best_rank: dict[K, int] = {}
    for i, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[i]
        seen: set[K] = set()
        for rank, key in enumerate(ranking, start=1):
            if key in seen:  # a retriever listing the same id twice must not count it twice
                continue
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            best_rank[key] = min(best_rank.get(key, rank), rank)
    return _ordered(scores, best_rank)


def score_fusion(
    scored: Sequence[Sequence[tuple[K, float]]], weights: Sequence[float]
) -> list[tuple[K, float]]:
    """Fuse ``(id, score)`` lists (higher is better) by weighted min-max-normalised score.

    A list whose scores are all equal normalises to 1.0 for each of its ids. An id listed
    twice in one list counts once, at its first (best) place.
    """
    if len(weights) != len(scored):
        raise ValueError("one weight per ranking")
    fused: dict[K, float] = {}
    best_rank: dict[K, int] = {}
    for weight, hits in zip(weights, scored, strict=True):
        if not hits:
            continue
        values = [s for _, s in hits]
        low, high = min(values), max(values)
        span = high - low
        seen: set[K] = set()
        for rank, (key, score) in enumerate(hits, start=1):
            if key in seen:
                continue
            seen.add(key)
            normalised = (score - low) / span if span > 0 else 1.0
            fused[key] = fused.get(key, 0.0) + weight * normalised
            best_rank[key] = min(best_rank.get(key, rank), rank)
    return _ordered(fused, best_rank)


def hybrid_fusion(
    vector_hits: Sequence[tuple[K, float]],
    text_hits: Sequence[tuple[K, float]],
    *,
    vector_weight: float = HYBRID_VECTOR_WEIGHT,
) -> list[tuple[K, float]]:
    """Hybrid search's rule: :func:`score_fusion` of cosine and BM25 scores."""
    if not 0.0 <= vector_weight <= 1.0:
        raise ValueError("vector_weight must be within [0, 1]")
    return score_fusion([vector_hits, text_hits], [vector_weight, 1.0 - vector_weight])
