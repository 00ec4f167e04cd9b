"""The store: add, filtered search in three modes, delete by source, prune, model changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestra.config.knowledge import KnowledgeSection, SecretsConfig
from orchestra.errors import KnowledgeError
from orchestra.knowledge import Hit, KnowledgeStore, Source
from orchestra.knowledge.embeddings import LocalEmbedder, ProviderEmbedder

from .conftest import EmbeddingServer

ENTRIES = [
    (
        "We decided to keep the knowledge store in LanceDB, embedded on local disk.",
        "decision",
        "shop",
    ),
    (
        "Convention: every error message ends with a hint telling the user how to fix it.",
        "convention",
        "shop",
    ),
    (
        "The payment webhook retried forever because the idempotency key was regenerated.",
        "bug",
        "shop",
    ),
    ("GET /v1/orders returns at most 100 orders per page; use the cursor for more.", "api", "shop"),
    ("We decided the mobile app caches product images for seven days.", "decision", "mobile"),
]


def fill(store: KnowledgeStore) -> dict[str, str]:
    return {text: store.add(text, kind, project) for text, kind, project in ENTRIES}


def texts(hits: list[Hit]) -> list[str]:
    return [h.entry.text for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_search_finds_the_right_entry_in_every_mode(store: KnowledgeStore, mode: str) -> None:
    ids = fill(store)
    hits = store.search("which database holds the knowledge store", mode=mode, k=3)  # type: ignore[arg-type]
    assert hits[0].entry.id == ids[ENTRIES[0][0]]
    assert hits[0].entry.kind == "decision"


def test_hybrid_fuses_by_the_kind_of_vectors_best_hit(
    store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rule (knowledge.fusion.kind_aware_fusion) needs the kind of vector's best hit,
    # read in the same vector query as the scores.
    import orchestra.knowledge._search as search_module

    seen: list[str | None] = []
    real = search_module.kind_aware_fusion

    def spy(vector_hits: Any, text_hits: Any, *, vector_top_kind: str | None) -> Any:
        seen.append(vector_top_kind)
        return real(vector_hits, text_hits, vector_top_kind=vector_top_kind)

    monkeypatch.setattr(search_module, "kind_aware_fusion", spy)
    ids = fill(store)
    hits = store.search("which database holds the knowledge store", mode="hybrid", k=3)
    assert hits[0].entry.id == ids[ENTRIES[0][0]]
    assert seen == ["decision"]


def test_filters_run_inside_the_query(store: KnowledgeStore) -> None:
    fill(store)
    # k=1 with a filter: a post-filter would return nothing when the best global match is
    # filtered out; a prefilter still returns the best match inside the filter.
    hits = store.search("we decided", project="mobile", k=1)
    assert texts(hits) == [ENTRIES[4][0]]
    hits = store.search("how many orders per page", kind="decision", k=1, mode="vector")
    assert hits and all(h.entry.kind == "decision" for h in hits)
    assert store.search("orders", project="mobile", mode="text") == []


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_hits_carry_their_own_rows_across_writes_deletes_and_compaction(
    store: KnowledgeStore, mode: str
) -> None:
    # Search reads the final rows back by row address; rows spread over several
    # fragments, with deletions and a compaction between searches, must still come back
    # as the entries the retrievers ranked (same id, same text, same metadata).
    ids = fill(store)  # one fragment per add
    store.add("Orders are archived after ninety days.", "note", "shop", tags=["orders"])
    store.delete(ids[ENTRIES[2][0]])
    query = "how many orders per page"
    before = store.search(query, mode=mode, k=10)  # type: ignore[arg-type]
    assert before[0].entry.id == ids[ENTRIES[3][0]]
    assert ids[ENTRIES[2][0]] not in {h.entry.id for h in before}
    for hit in before:
        assert hit.entry == store.get(hit.entry.id)
    # Compaction rewrites the fragments, so every row address changes; the same query
    # must rank the same entries with the same scores, read from their new addresses.
    store.optimize(vector_index=False)
    after = store.search(query, mode=mode, k=10)  # type: ignore[arg-type]
    assert [h.entry for h in after] == [h.entry for h in before]
    assert [h.score for h in after] == pytest.approx([h.score for h in before], rel=1e-4)


def test_filters_by_team_and_tags(store: KnowledgeStore) -> None:
    store.add(
        "Deploys happen on Tuesdays after the standup.",
        "convention",
        "shop",
        team="ops",
        tags=["deploy"],
    )
    store.add("Deploys of the mobile app go through the store review.", "note", "shop", team="apps")
    assert [h.entry.team for h in store.search("deploys", team="ops")] == ["ops"]
    assert [h.entry.tags for h in store.search("deploys", tags=["deploy"])] == [("deploy",)]


def test_entry_round_trip_and_dedupe(tmp_path: Path, embedder: LocalEmbedder) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store = KnowledgeStore.open(tmp_path / "kb", embedder=embedder, clock=lambda: now)
    source = Source(file="src/app.py", start_line=3, end_line=9, run="run-1", agent="architect")
    first = store.add(
        "Use the repository pattern for data access.",
        "pattern",
        "shop",
        team="core",
        source=source,
        tags=["arch"],
    )
    again = store.add(
        "Use the repository pattern for data access.", "pattern", "shop", source=source
    )
    assert again == first
    entry = store.get(first)
    assert entry is not None
    assert (entry.kind, entry.project, entry.team, entry.tags) == (
        "pattern",
        "shop",
        "core",
        ("arch",),
    )
    assert entry.source == Source("src/app.py", 3, 9, "run-1", "architect", None, "manual")
    assert entry.created_at == now
    assert len(entry.content_hash) == 64
    assert store.stats().total == 1


def test_secrets_are_redacted_before_storage(store: KnowledgeStore) -> None:
    key = "sk-ant-api03-" + "Xq7RmT2pLk9WvB4nZs8DfH3jGc6Ya1Ue5Io0PxQw"
    entry_id = store.add(f"The staging key is {key}; rotate it monthly.", "note", "shop")
    entry = store.get(entry_id)
    assert entry is not None
    assert key not in entry.text and "[REDACTED:anthropic_key]" in entry.text
    assert entry.redactions == ("anthropic_key",)
    # Nothing about the key is searchable either.
    assert store.search("Xq7RmT2pLk9WvB4nZs8DfH3jGc6Ya1Ue5Io0PxQw", mode="text") == []


def test_refusal_policy(tmp_path: Path, embedder: LocalEmbedder) -> None:
    config = KnowledgeSection(secrets=SecretsConfig(action="refuse"))
    store = KnowledgeStore.open(tmp_path / "kb", config, embedder=embedder)
    with pytest.raises(KnowledgeError, match="refused"):
        store.add("db at postgres://app:pa55word@db/app", "note", "shop")
    assert store.stats().total == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "gossip"}, "unknown kind"),
        ({"project": "bad\nproject"}, "invalid project"),
        ({"project": ""}, "invalid project"),
        ({"text": "   "}, "empty"),
        ({"text": "x" * 100_001}, "limit"),
    ],
)
def test_bad_input_is_a_clear_error(
    store: KnowledgeStore, kwargs: dict[str, str], message: str
) -> None:
    args = {"text": "a fact", "kind": "note", "project": "shop", **kwargs}
    with pytest.raises(KnowledgeError, match=message) as info:
        store.add(**args)  # type: ignore[arg-type]
    assert info.value.hint


def test_quotes_in_filters_cannot_break_the_query(store: KnowledgeStore) -> None:
    fill(store)
    entry_id = store.add("Folder names may hold quotes.", "note", "O'Brien café")
    assert [h.entry.id for h in store.search("folder names", project="O'Brien café")] == [entry_id]
    # Values are SQL-quoted: an injection attempt is just a project nobody has.
    assert store.search("we decided", project="shop' OR '1'='1") == []
    assert store.delete_by_source(file="x' OR '1'='1") == 0
    assert store.stats().total == 6
    # Query text goes to the FTS engine as plain words, never parsed as syntax.
    assert store.search('x" OR 1=1 -- (', mode="text") == []


def test_delete_by_source(store: KnowledgeStore) -> None:
    store.add(
        "Plan: split the checkout service.",
        "decision",
        "shop",
        source=Source(run="run-7", agent="architect"),
    )
    store.add(
        "Review: missing tests for refunds.",
        "note",
        "shop",
        source=Source(run="run-7", agent="reviewer"),
    )
    store.add("Unrelated fact about caching.", "note", "shop", source=Source(run="run-8"))
    assert store.delete_by_source(run="run-7", agent="reviewer") == 1
    assert store.delete_by_source(run="run-7") == 1
    assert store.stats().total == 1
    with pytest.raises(KnowledgeError):
        store.delete_by_source()


def test_prune_by_kind_and_age(tmp_path: Path, embedder: LocalEmbedder) -> None:
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = KnowledgeStore.open(tmp_path / "kb", embedder=embedder, clock=lambda: clock[0])
    store.add("An old note about the build cache.", "note", "shop")
    store.add("An old decision to use PostgreSQL in production.", "decision", "shop")
    clock[0] += timedelta(days=100)
    store.add("A fresh note about flaky tests.", "note", "shop")
    result = store.prune(retention_days={"note": 90})
    assert result.removed == {"note": 1}
    remaining = {h.entry.text for h in store.search("note decision", k=10, mode="vector")}
    assert remaining == {
        "An old decision to use PostgreSQL in production.",
        "A fresh note about flaky tests.",
    }
    # Default retention comes from configuration (note: 90 days).
    clock[0] += timedelta(days=91)
    assert store.prune().removed["note"] == 1


def test_stats(store: KnowledgeStore) -> None:
    fill(store)
    stats = store.stats()
    assert stats.total == 5
    assert stats.by_project == {"shop": 4, "mobile": 1}
    assert stats.by_kind["decision"] == 2
    assert (stats.embedding_model, stats.dimension) == (
        "local:sentence-transformers/all-MiniLM-L6-v2",
        384,
    )


def test_change_of_embedding_model_is_detected_and_reembed_fixes_it(
    tmp_path: Path, embedder: LocalEmbedder, embedding_server: EmbeddingServer
) -> None:
    location = tmp_path / "kb"
    fill(KnowledgeStore.open(location, embedder=embedder))
    provider = ProviderEmbedder(base_url=embedding_server.base_url, model="fake-embed")
    switched = KnowledgeStore.open(location, embedder=provider)
    with pytest.raises(KnowledgeError) as info:
        switched.search("knowledge store database", mode="vector")
    assert "all-MiniLM-L6-v2" in info.value.message and "fake-embed" in info.value.message
    assert info.value.hint and "orchestra kb reembed" in info.value.hint
    with pytest.raises(KnowledgeError):
        switched.add("A new fact must not mix vectors.", "note", "shop")
    # BM25 needs no vectors and keeps working.
    assert switched.search("LanceDB", mode="text")
    assert switched.reembed() == 5
    assert switched.recorded_model() == (provider.name, 16)
    hits = switched.search("LanceDB embedded local disk", mode="vector", k=1)
    assert hits[0].entry.text == ENTRIES[0][0]
    assert switched.stats().total == 5
    # And the old model is now the mismatch.
    with pytest.raises(KnowledgeError, match="reembed"):
        KnowledgeStore.open(location, embedder=embedder).search("x", mode="hybrid")


def test_uri_and_directory_open_the_same_store(tmp_path: Path, embedder: LocalEmbedder) -> None:
    folder = tmp_path / "kb"
    entry_id = KnowledgeStore.open(folder, embedder=embedder).add("Shared fact.", "note", "shop")
    via_uri = KnowledgeStore.open(f"file://{folder}", embedder=embedder)
    assert via_uri.get(entry_id) is not None
    assert via_uri.search("shared fact", k=1)[0].entry.id == entry_id


def test_default_location_is_under_orchestra_home(embedder: LocalEmbedder) -> None:
    import os

    store = KnowledgeStore.open(embedder=embedder)
    assert store.location == str(Path(os.environ["ORCHESTRA_HOME"]) / "knowledge")


def test_empty_store_search_and_stats(store: KnowledgeStore) -> None:
    assert store.search("anything", mode="text") == []
    assert store.search("anything") == []
    assert store.stats().total == 0
    with pytest.raises(KnowledgeError):
        store.search("   ")


def test_async_api_runs_in_worker_threads(store: KnowledgeStore) -> None:
    import asyncio
    import threading

    main_thread = threading.get_ident()
    seen: list[int] = []
    original = store.embedder.embed

    def spy(texts: list[str]):  # type: ignore[no-untyped-def]
        seen.append(threading.get_ident())
        return original(texts)

    store.embedder.embed = spy  # type: ignore[method-assign]

    async def main() -> list[Hit]:
        await store.aadd("Architect plan: split billing into its own service.", "decision", "shop")
        return await store.asearch("billing service plan", project="shop")

    hits = asyncio.run(main())
    assert hits[0].entry.text.startswith("Architect plan")
    assert seen and main_thread not in seen


def test_vector_index_for_large_stores(tmp_path: Path, embedding_server: EmbeddingServer) -> None:
    from orchestra.knowledge import NewEntry

    provider = ProviderEmbedder(base_url=embedding_server.base_url, model="fake", batch_size=256)
    store = KnowledgeStore.open(tmp_path / "kb", embedder=provider)
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
        "mu",
    ]
    items = [
        NewEntry(f"{words[i % 12]} {words[(i * 7) % 12]} item {i}", "note", f"p{i % 3}")
        for i in range(600)
    ]
    store.add_many(items)
    assert store.create_vector_index() is False  # below VECTOR_INDEX_MIN_ROWS: exact scan
    assert store.create_vector_index(min_rows=0) is True
    hits = store.search("alpha beta item", project="p1", k=5, mode="vector")
    assert len(hits) == 5 and all(h.entry.project == "p1" for h in hits)
    assert store.search("item 301", project="p1", mode="hybrid", k=3)
    # The filter columns are indexed with the vectors; filters must still hold exactly,
    # for rows written before and after the indexes.
    store.add("alpha beta late arrival", "decision", "p1")
    for mode in ("hybrid", "vector", "text"):
        hits = store.search("alpha beta", project="p1", kind="decision", mode=mode, k=5)  # type: ignore[arg-type]
        assert [h.entry.text for h in hits] == ["alpha beta late arrival"]
        hits = store.search("alpha beta item", project="p2", kind="note", mode=mode, k=5)  # type: ignore[arg-type]
        assert len(hits) == 5 and all(h.entry.project == "p2" for h in hits)


def test_entries_without_a_model_record_are_never_mixed(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    import lancedb

    store = KnowledgeStore.open(tmp_path / "kb", embedder=embedder)
    store.add("An entry whose model record gets lost.", "note", "shop")
    lancedb.connect(str(tmp_path / "kb")).drop_table("meta")  # a damaged store
    damaged = KnowledgeStore.open(tmp_path / "kb", embedder=embedder)
    with pytest.raises(KnowledgeError, match="no record") as info:
        damaged.add("Another entry.", "note", "shop")
    assert info.value.hint and "reembed" in info.value.hint
    assert damaged.search("model record", mode="text")  # BM25 still works
    assert damaged.reembed() == 1
    assert damaged.search("model record lost", mode="vector", k=1)
