"""Exact vector search in memory for small stores: the same hits as LanceDB's exact scan.

Each test opens the same folder twice: ``fast`` searches the in-memory copy of the
vectors (the default for stores of at most ``knowledge.memory_scan_max_rows`` entries);
``lance`` has it turned off, so LanceDB's own exact scan answers. The vectors are random
(no ties); the queries are embedded by the packaged model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import orchestra.knowledge._search as search_module
from orchestra.config.knowledge import KnowledgeSection
from orchestra.knowledge import KnowledgeStore, NewEntry
from orchestra.knowledge.embeddings import LocalEmbedder

QUERIES = ["which database holds the knowledge store", "retry the payment webhook", "orders"]
FILTERS: list[dict[str, str]] = [
    {},
    {"project": "a"},
    {"kind": "decision"},
    {"team": "ops"},
    {"project": "b", "kind": "note"},
    {"project": "nowhere"},
]
KINDS = ("api", "decision", "note")
DIMENSION = 384


def random_items(count: int, seed: int, start: int = 0) -> tuple[list[NewEntry], np.ndarray]:
    rng = np.random.default_rng(seed)
    items = [
        NewEntry(
            text=f"entry number {start + i}",
            kind=KINDS[i % 3],
            project="ab"[i % 2],
            team="ops" if i % 5 == 0 else None,
        )
        for i in range(count)
    ]
    return items, rng.normal(size=(count, DIMENSION)).astype(np.float32)


def open_pair(folder: Path, embedder: LocalEmbedder) -> tuple[KnowledgeStore, KnowledgeStore]:
    fast = KnowledgeStore.open(folder, embedder=embedder)
    lance = KnowledgeStore.open(folder, KnowledgeSection(memory_scan_max_rows=0), embedder=embedder)
    return fast, lance


def warm(store: KnowledgeStore) -> None:
    """One vector query, then wait for the in-memory copy it starts loading."""
    store.search("warm up", mode="vector")
    assert store._tables.vectors.wait(timeout=120)


def assert_same_hits(
    fast: KnowledgeStore, lance: KnowledgeStore, *, k: int = 15, mode: str = "vector"
) -> None:
    lance._tables.invalidate()  # its cached reader would not see ``fast``'s writes yet
    warm(fast)  # once loaded, the copy is synced on the query's thread, before the query
    for query in QUERIES:
        for filters in FILTERS:
            got = fast.search(query, k=k, mode=mode, **filters)  # type: ignore[arg-type]
            want = lance.search(query, k=k, mode=mode, **filters)  # type: ignore[arg-type]
            assert [h.entry.id for h in got] == [h.entry.id for h in want], (query, filters)
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
            assert [h.entry for h in got] == [h.entry for h in want]


class LanceVectorSearches:
    """Counts LanceDB vector searches (the in-memory path makes none)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = search_module._vector_search

        async def counted(*args: Any) -> Any:
            self.calls += 1
            return await real(*args)

        monkeypatch.setattr(search_module, "_vector_search", counted)


def test_in_memory_search_equals_lancedbs_exact_scan_with_and_without_filters(
    tmp_path: Path, embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, lance = open_pair(tmp_path / "kb", embedder)
    items, vectors = random_items(400, seed=1)
    fast.add_many(items[:250], vectors=vectors[:250])  # two fragments
    fast.add_many(items[250:], vectors=vectors[250:])
    searches = LanceVectorSearches(monkeypatch)
    # The first query starts loading the copy in the background; LanceDB answers it.
    first = fast.search("orders", mode="vector")
    assert searches.calls == 1
    assert fast._tables.vectors.wait(timeout=120)
    again = fast.search("orders", mode="vector")
    assert [h.entry for h in again] == [h.entry for h in first]
    assert [h.score for h in again] == pytest.approx([h.score for h in first], abs=1e-5)
    fast.search("orders", mode="hybrid", project="a")
    assert searches.calls == 1  # both served from memory
    assert_same_hits(fast, lance)
    assert_same_hits(fast, lance, mode="hybrid", k=10)
    # k larger than what a filter leaves: every matching entry, none from outside it
    hits = fast.search("orders", mode="vector", k=1000, project="b", kind="note")
    assert len(hits) == sum(1 for i in items if i.project == "b" and i.kind == "note")
    # tags are not held in memory: LanceDB answers those queries
    searches.calls = 0
    assert fast.search("orders", mode="vector", tags=["x"]) == []
    assert searches.calls == 1


def test_in_memory_search_follows_inserts_deletes_updates_and_compaction(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    fast, lance = open_pair(tmp_path / "kb", embedder)
    items, vectors = random_items(200, seed=2)
    ids = fast.add_many(items, vectors=vectors)
    assert_same_hits(fast, lance)  # loads the copy
    more, more_vectors = random_items(60, seed=3, start=200)
    more = [NewEntry(i.text, i.kind, "c", team="new-team") for i in more]  # new filter values
    fast.add_many(more, vectors=more_vectors)
    assert_same_hits(fast, lance)
    assert fast.search("orders", project="c", team="new-team", k=100, mode="vector")
    for entry_id in ids[:30]:  # fewer than a quarter: masked, not rebuilt
        fast.delete(entry_id)
    assert_same_hits(fast, lance)
    for entry_id in ids[30:120]:  # now more than a quarter: rebuilt from the live rows
        fast.delete(entry_id)
    assert_same_hits(fast, lance)
    # An update through LanceDB rewrites the rows under new addresses.
    table = fast._tables.open("entries")
    table.update(where="project = 'b'", values={"team": "moved"})
    fast._tables.invalidate()
    assert_same_hits(fast, lance)
    assert fast.search("orders", team="moved", k=5, mode="vector")
    fast.optimize(vector_index=False)  # compaction: every row address changes
    assert_same_hits(fast, lance)


WRITER = """
import sys
import lancedb, numpy as np, pyarrow as pa
table = lancedb.connect(sys.argv[1]).open_table("entries")
row = {name: None for name in table.schema.names}
row.update(id="from-another-process", text="written elsewhere", title="",
           search_text="written elsewhere", kind="decision", project="a", origin="manual",
           tags=[], redactions=[], content_hash="x",
           vector=np.load(sys.argv[2]).astype(np.float32).tolist())
table.add(pa.Table.from_pylist([row], schema=table.schema))
"""


def test_another_processs_writes_are_seen(tmp_path: Path, embedder: LocalEmbedder) -> None:
    fast, lance = open_pair(tmp_path / "kb", embedder)
    items, vectors = random_items(100, seed=4)
    fast.add_many(items, vectors=vectors)
    query = "the decision written by another process"
    assert_same_hits(fast, lance)
    target = tmp_path / "vector.npy"
    np.save(target, embedder.embed([query])[0])  # the query's own vector: the best hit
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path / "kb"), str(target)], check=True, env=env
    )
    # Another process's write is seen once the reader's cache expires (READ_CACHE_S).
    deadline = time.monotonic() + 60
    while fast.search(query, k=1, mode="vector")[0].entry.id != "from-another-process":
        assert time.monotonic() < deadline, "the other process's entry never appeared"
        time.sleep(0.2)
    assert_same_hits(fast, lance)


def test_stores_above_the_bound_are_searched_by_lancedb(
    tmp_path: Path, embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = KnowledgeStore.open(
        tmp_path / "kb", KnowledgeSection(memory_scan_max_rows=100), embedder=embedder
    )
    items, vectors = random_items(150, seed=5)
    small.add_many(items[:100], vectors=vectors[:100])
    warm(small)  # 100 rows: at the bound, loaded
    searches = LanceVectorSearches(monkeypatch)
    small.search("orders", mode="vector")
    assert searches.calls == 0  # in memory
    small.add_many(items[100:], vectors=vectors[100:])
    small.search("orders", mode="vector")
    assert searches.calls == 1  # 150 rows: above it, LanceDB
    assert not small._tables.vectors.wait(timeout=0)  # and the copy is freed
    small.search("orders", mode="vector")
    assert not small._tables.vectors.wait(timeout=120)  # nor loaded again
    assert searches.calls == 2
    small.close()


def test_closing_frees_the_copy(tmp_path: Path, embedder: LocalEmbedder) -> None:
    store = KnowledgeStore.open(tmp_path / "kb", embedder=embedder)
    items, vectors = random_items(20, seed=6)
    store.add_many(items, vectors=vectors)
    warm(store)
    store.close()
    assert not store._tables.vectors.wait(timeout=0)
    warm(store)  # and the store stays usable
