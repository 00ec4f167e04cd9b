"""Retrieval quality on a labelled set built from a real codebase (click, installed in the venv).

Queries paraphrase docstrings; each target is the function or class the docstring belongs
to. The metrics are computed with real embeddings from the packaged model.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from orchestra.knowledge import KnowledgeStore, ingest_repository
from orchestra.knowledge.embeddings import LocalEmbedder
from orchestra.knowledge.evaluation import (
    RetrievalMetrics,
    evaluate,
    first_relevant_rank,
    load_queries,
)
from orchestra.knowledge.minilm import MiniLMEncoder

DATA = Path(__file__).parent / "data" / "click_queries.json"


@pytest.fixture(scope="module")
def click_metrics(
    tmp_path_factory: pytest.TempPathFactory, encoder: MiniLMEncoder
) -> dict[str, RetrievalMetrics]:
    import json

    spec = importlib.util.find_spec("click")
    assert spec is not None and spec.origin is not None
    package = Path(spec.origin).parent
    repo = tmp_path_factory.mktemp("click")
    for module in json.loads(DATA.read_text())["modules"]:
        shutil.copy(package / module, repo / module)
    store = KnowledgeStore.open(
        tmp_path_factory.mktemp("kb"), embedder=LocalEmbedder(encoder=encoder)
    )
    report = ingest_repository(store, repo, project="click")
    assert report.chunks_added > 100
    queries = load_queries(DATA)
    # Every target must exist, or a typo in the labels would silently lower recall.
    titles = {e.title.split(" (part")[0] for e in store.recent("click", ["code"], limit=1000)}
    missing = {t for q in queries for t in q.targets} - titles
    assert not missing, missing
    return {m: evaluate(store, queries, m, project="click") for m in ("vector", "text", "hybrid")}  # type: ignore[misc]


def test_rank_scoring() -> None:
    assert first_relevant_rank(["a", "b (part 2)", "c"], ["b"]) == 2
    assert first_relevant_rank(["a"], ["z"]) is None


@pytest.mark.slow
def test_hybrid_is_at_least_as_good_as_either_method(
    click_metrics: dict[str, RetrievalMetrics],
) -> None:
    vector, text, hybrid = (click_metrics[m] for m in ("vector", "text", "hybrid"))
    for m in (vector, text, hybrid):
        print(f"{m.mode:>6}: R@5 {m.recall_at_5:.3f} R@10 {m.recall_at_10:.3f} MRR {m.mrr:.3f}")
    assert hybrid.recall_at_10 >= max(vector.recall_at_10, text.recall_at_10)
    assert hybrid.recall_at_5 >= max(vector.recall_at_5, text.recall_at_5)


@pytest.mark.slow
def test_each_method_is_useful_on_its_own(click_metrics: dict[str, RetrievalMetrics]) -> None:
    # Floors well below the measured values (see docs/knowledge.md): they catch a broken
    # model, tokenizer or index, not small ranking changes.
    for mode in ("vector", "text", "hybrid"):
        assert click_metrics[mode].recall_at_10 >= 0.75, click_metrics[mode]
        assert click_metrics[mode].mrr >= 0.5, click_metrics[mode]
