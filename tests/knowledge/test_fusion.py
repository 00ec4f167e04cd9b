"""Reciprocal rank fusion."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestra.knowledge.fusion import reciprocal_rank_fusion


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
