"""The knowledge store: decisions, conventions, API facts and code, per project and team.

Entries live in LanceDB with embeddings from the packaged all-MiniLM-L6-v2 model (run in
numpy or, for bulk batches, int8 ONNX Runtime, offline) or an OpenAI-compatible provider;
search is hybrid (vector + BM25 fused by normalised score); secrets are redacted or
refused before anything is stored.

Public API::

    store = KnowledgeStore.open()                 # $ORCHESTRA_HOME/knowledge
    entry_id = store.add("We decided ...", kind="decision", project="shop")
    hits = store.search("which database", project="shop", k=5)
    store.delete_by_source(run="run-42")

Names are imported lazily so that light users (the Claude Code hooks, the CLI's help)
do not pay for LanceDB and numpy at import time.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from orchestra.errors import KnowledgeError
    from orchestra.knowledge.embeddings import (
        Embedder,
        LocalEmbedder,
        ProviderEmbedder,
        embed_async,
        embedder_from_config,
    )
    from orchestra.knowledge.hook import run_hook
    from orchestra.knowledge.hooks import claude_code_hooks
    from orchestra.knowledge.ingest import IngestReport, ingest_repository
    from orchestra.knowledge.models import (
        KINDS,
        Entry,
        EntryId,
        Hit,
        Kind,
        PruneResult,
        SearchMode,
        Source,
        StoreStats,
    )
    from orchestra.knowledge.secrets import ScrubResult, SecretFinding, find_secrets, scrub
    from orchestra.knowledge.store import KnowledgeStore, NewEntry

_EXPORTS = {
    "KnowledgeError": "orchestra.errors",
    "Embedder": "orchestra.knowledge.embeddings",
    "LocalEmbedder": "orchestra.knowledge.embeddings",
    "ProviderEmbedder": "orchestra.knowledge.embeddings",
    "embed_async": "orchestra.knowledge.embeddings",
    "embedder_from_config": "orchestra.knowledge.embeddings",
    "run_hook": "orchestra.knowledge.hook",
    "claude_code_hooks": "orchestra.knowledge.hooks",
    "IngestReport": "orchestra.knowledge.ingest",
    "ingest_repository": "orchestra.knowledge.ingest",
    "KINDS": "orchestra.knowledge.models",
    "Entry": "orchestra.knowledge.models",
    "EntryId": "orchestra.knowledge.models",
    "Hit": "orchestra.knowledge.models",
    "Kind": "orchestra.knowledge.models",
    "PruneResult": "orchestra.knowledge.models",
    "SearchMode": "orchestra.knowledge.models",
    "Source": "orchestra.knowledge.models",
    "StoreStats": "orchestra.knowledge.models",
    "ScrubResult": "orchestra.knowledge.secrets",
    "SecretFinding": "orchestra.knowledge.secrets",
    "find_secrets": "orchestra.knowledge.secrets",
    "scrub": "orchestra.knowledge.secrets",
    "KnowledgeStore": "orchestra.knowledge.store",
    "NewEntry": "orchestra.knowledge.store",
}

__all__ = [
    "KINDS",
    "Embedder",
    "Entry",
    "EntryId",
    "Hit",
    "IngestReport",
    "Kind",
    "KnowledgeError",
    "KnowledgeStore",
    "LocalEmbedder",
    "NewEntry",
    "ProviderEmbedder",
    "PruneResult",
    "ScrubResult",
    "SearchMode",
    "SecretFinding",
    "Source",
    "StoreStats",
    "claude_code_hooks",
    "embed_async",
    "embedder_from_config",
    "find_secrets",
    "ingest_repository",
    "run_hook",
    "scrub",
]


def __getattr__(name: str) -> typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestra.knowledge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
