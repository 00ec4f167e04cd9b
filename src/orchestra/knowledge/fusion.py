"""Fusing the vector and BM25 rankings into the hybrid ranking.

Four rules, all deterministic (ties go to the best single rank, then first appearance):

- :func:`kind_aware_fusion` (hybrid search's rule): when vector search's best hit is a
  decision or a convention (an entry people or agents wrote in prose, kinds
  :data:`VECTOR_FIRST_KINDS`), the vector ranking; otherwise :func:`adaptive_fusion`.
  Questions about such entries are paraphrases of prose, where BM25's word overlap found
  less than vector search on every rule measured (docs/knowledge.md).
- :func:`adaptive_fusion`: :func:`score_fusion` with a weight that
  depends on how sure BM25 is for this query. When BM25's best hit stands clear of its
  second (normalised gap >= :data:`CLEAR_GAP`: the query names something BM25 matched
  well), vector and BM25 weigh equally; otherwise vector weighs 0.7 and vector's own best
  hit stays first (a rank tie-break in favour of the retriever that was stronger on every
  labelled set).
- :func:`score_fusion`: each retriever's scores are min-max
  normalised over its own candidates, then combined as ``w * vector + (1 - w) * bm25``
  (a candidate missing from one list gets 0 there). Normalising per query makes the
  combination query-dependent: a BM25 list with one clear winner lifts it, a flat one
  (many entries sharing the query's common words) spreads its weight thin.
- :func:`reciprocal_rank_fusion`: ``sum(weight / (k + rank))``, Cormack, Clarke and
  Büttcher (SIGIR 2009); kept for comparison and for callers that only have ranks.

The rule and its constants were chosen by measurement on the labelled sets of
``bench/knowledge/sets`` with a leave-one-set-out check (see docs/knowledge.md, "How
fusion was chosen"): with k = 60, RRF lost to vector search alone on the pooled sets, and
a fixed 0.6/0.4 mix lost MRR to vector alone on the decision entries.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_K = 60

HYBRID_VECTOR_WEIGHT = 0.6
"""Weight of the normalised vector score in :func:`hybrid_fusion` (BM25 gets the rest)."""

CLEAR_GAP = 0.1
"""BM25 is sure of a query when its best hit's min-max-normalised score is at least this
far above its second's."""
SURE_VECTOR_WEIGHT = 0.5
"""Vector weight in :func:`adaptive_fusion` when BM25 is sure."""
UNSURE_VECTOR_WEIGHT = 0.7
"""Vector weight in :func:`adaptive_fusion` when it is not (vector's best also stays first)."""
VECTOR_FIRST_KINDS: tuple[str, ...] = ("decision", "convention")
"""Kinds whose being vector search's best hit makes :func:`kind_aware_fusion` keep the
vector ranking. Only the kinds a labelled set measured (bench/knowledge/sets/decisions.json);
other prose kinds (note, bug, pattern) keep :func:`adaptive_fusion` until one is measured."""


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
    """:func:`score_fusion` of cosine and BM25 scores at a fixed weight (what
    :func:`adaptive_fusion` applies with the weight it picks per query)."""
    if not 0.0 <= vector_weight <= 1.0:
        raise ValueError("vector_weight must be within [0, 1]")
    return score_fusion([vector_hits, text_hits], [vector_weight, 1.0 - vector_weight])


def bm25_gap(text_hits: Sequence[tuple[K, float]]) -> float:
    """How far BM25's best score stands above its second, on its min-max-normalised scale
    (1.0 with fewer than two distinct hits)."""
    values = [s for _, s in text_hits]
    if len(values) < 2:
        return 1.0
    span = max(values) - min(values)
    return (values[0] - values[1]) / span if span > 0 else 0.0


def adaptive_fusion(
    vector_hits: Sequence[tuple[K, float]],
    text_hits: Sequence[tuple[K, float]],
    *,
    clear_gap: float = CLEAR_GAP,
    sure_weight: float = SURE_VECTOR_WEIGHT,
    unsure_weight: float = UNSURE_VECTOR_WEIGHT,
) -> list[tuple[K, float]]:
    """Hybrid search's rule (see the module docstring); both lists best first."""
    if not text_hits:
        return hybrid_fusion(vector_hits, text_hits, vector_weight=1.0)
    if bm25_gap(text_hits) >= clear_gap:
        return hybrid_fusion(vector_hits, text_hits, vector_weight=sure_weight)
    fused = hybrid_fusion(vector_hits, text_hits, vector_weight=unsure_weight)
    if not vector_hits or fused[0][0] == vector_hits[0][0]:
        return fused
    best = vector_hits[0][0]
    rest = [(key, score) for key, score in fused if key != best]
    return [(best, fused[0][1]), *rest]


def kind_aware_fusion(
    vector_hits: Sequence[tuple[K, float]],
    text_hits: Sequence[tuple[K, float]],
    *,
    vector_top_kind: str | None,
) -> list[tuple[K, float]]:
    """Hybrid search's rule: the vector ranking when vector's best hit is of a kind in
    :data:`VECTOR_FIRST_KINDS` (BM25-only candidates follow it), else
    :func:`adaptive_fusion`."""
    if vector_top_kind in VECTOR_FIRST_KINDS:
        return hybrid_fusion(vector_hits, text_hits, vector_weight=1.0)
    return adaptive_fusion(vector_hits, text_hits)
