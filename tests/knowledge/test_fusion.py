"""Fusion rules: reciprocal rank fusion and the normalised-score fusion hybrid search uses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestra.knowledge.fusion import (
    VECTOR_FIRST_KINDS,
    adaptive_fusion,
    bm25_gap,
    hybrid_fusion,
    kind_aware_fusion,
    reciprocal_rank_fusion,
    score_fusion,
)


def test_agreement_beats_a_single_first_place() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d", "a"]])
    assert [key for key, _ in fused][:2] == ["b", "a"]
    assert dict(fused)["b"] == 1 / 62 + 1 / 61


def test_duplicates_inside_one_ranking_count_once() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "a", "a"], []]))
    assert fused == {"a": 1 / 61}


@given(st.lists(st.lists(st.integers(0, 30), max_size=20), min_size=1, max_size=4))
def test_scores_sorted_and_cover_every_id(rankings: list[list[int]]) -> None:
    fused = reciprocal_rank_fusion(rankings)
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)
    assert {k for k, _ in fused} == {x for r in rankings for x in r}
    assert all(0 < s <= len(rankings) / 61 for s in scores)


def test_score_fusion_normalises_each_list_before_weighting() -> None:
    # BM25 scores (tens) and cosines (below 1) land on one scale: each list's best is 1.
    fused = score_fusion([[("a", 0.9), ("b", 0.5)], [("b", 30.0), ("c", 10.0)]], [0.6, 0.4])
    assert fused == [("a", 0.6), ("b", 0.4), ("c", 0.0)]


def test_a_clear_bm25_winner_beats_a_flat_vector_list() -> None:
    # Query-dependence: the same weights favour whichever retriever separates its hits.
    vector = [("v1", 0.52), ("t1", 0.51), ("v2", 0.50)]
    text = [("t1", 25.0), ("v1", 3.0), ("v2", 2.9)]
    assert next(k for k, _ in hybrid_fusion(vector, text)) == "t1"


def test_hybrid_fusion_with_full_weight_is_the_vector_ranking() -> None:
    vector = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    text = [("c", 9.0), ("b", 1.0)]
    assert [k for k, _ in hybrid_fusion(vector, text, vector_weight=1.0)] == ["a", "b", "c"]
    assert next(k for k, _ in hybrid_fusion(vector, text, vector_weight=0.0)) == "c"


def test_equal_scores_normalise_to_one_and_duplicates_count_once() -> None:
    assert score_fusion([[("a", 2.0), ("a", 2.0)], []], [1.0, 0.0]) == [("a", 1.0)]


@given(
    st.lists(st.tuples(st.integers(0, 20), st.floats(0, 50)), max_size=15),
    st.lists(st.tuples(st.integers(0, 20), st.floats(0, 50)), max_size=15),
    st.floats(0, 1),
)
def test_score_fusion_is_bounded_sorted_and_complete(
    vector: list[tuple[int, float]], text: list[tuple[int, float]], weight: float
) -> None:
    vector.sort(key=lambda kv: -kv[1])
    text.sort(key=lambda kv: -kv[1])
    fused = hybrid_fusion(vector, text, vector_weight=weight)
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)
    assert {k for k, _ in fused} == {k for k, _ in [*vector, *text]}
    assert all(-1e-9 <= s <= 1 + 1e-9 for s in scores)


def test_bm25_gap_is_the_normalised_lead_of_its_best_hit() -> None:
    assert bm25_gap([("a", 20.0), ("b", 10.0), ("c", 0.0)]) == 0.5
    assert bm25_gap([("a", 5.0), ("b", 5.0)]) == 0.0
    assert bm25_gap([("a", 5.0)]) == 1.0


def test_an_unsure_bm25_list_leaves_vectors_best_hit_first() -> None:
    # BM25's best barely leads (gap 0.05): vector weighs 0.7, and its best stays first
    # even though BM25's near-tie would lift another entry above it.
    vector = [("v1", 0.60), ("t1", 0.59), ("v2", 0.30)]
    text = [("t1", 10.5), ("t2", 10.0), ("v1", 0.5)]
    assert next(k for k, _ in hybrid_fusion(vector, text, vector_weight=0.7)) == "t1"
    fused = adaptive_fusion(vector, text)
    assert [k for k, _ in fused][:2] == ["v1", "t1"]
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)


def test_a_sure_bm25_list_weighs_as_much_as_vector() -> None:
    # The query names what BM25 found (a clear lead): equal weights let it win.
    vector = [("v1", 0.60), ("t1", 0.40), ("v2", 0.30)]
    text = [("t1", 25.0), ("v2", 6.0), ("v1", 5.0)]
    assert next(k for k, _ in adaptive_fusion(vector, text)) == "t1"
    assert next(k for k, _ in hybrid_fusion(vector, text, vector_weight=0.7)) == "v1"


def test_a_decision_at_vectors_top_keeps_the_vector_ranking() -> None:
    # BM25 is sure of a code chunk (clear lead), which adaptive fusion puts first; when
    # vector's best hit is a decision, hybrid keeps vector's order and BM25-only hits follow.
    vector = [("d1", 0.60), ("v2", 0.55), ("t1", 0.50), ("v3", 0.10)]
    text = [("t1", 25.0), ("t2", 6.0), ("v2", 5.0)]
    assert next(k for k, _ in adaptive_fusion(vector, text)) == "t1"
    for kind in VECTOR_FIRST_KINDS:
        fused = kind_aware_fusion(vector, text, vector_top_kind=kind)
        assert [k for k, _ in fused][:3] == ["d1", "v2", "t1"]
        assert {k for k, _ in fused} == {"d1", "v2", "t1", "v3", "t2"}
    for other in ("code", "note", None):
        assert kind_aware_fusion(vector, text, vector_top_kind=other) == adaptive_fusion(
            vector, text
        )


def test_without_bm25_hits_adaptive_fusion_is_the_vector_ranking() -> None:
    vector = [("a", 0.9), ("b", 0.8)]
    assert [k for k, _ in adaptive_fusion(vector, [])] == ["a", "b"]


@given(
    st.lists(st.tuples(st.integers(0, 20), st.floats(0, 1)), max_size=15),
    st.lists(st.tuples(st.integers(0, 20), st.floats(0, 50)), max_size=15),
)
def test_adaptive_fusion_is_sorted_and_complete(
    vector: list[tuple[int, float]], text: list[tuple[int, float]]
) -> None:
    vector.sort(key=lambda kv: -kv[1])
    text.sort(key=lambda kv: -kv[1])
    fused = adaptive_fusion(vector, text)
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)
    assert sorted(k for k, _ in fused) == sorted({k for k, _ in [*vector, *text]})
