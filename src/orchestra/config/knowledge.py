"""Configuration section ``knowledge``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestra.config.models import StrictModel


class EmbeddingConfig(StrictModel):
    """Which embedding model turns text into vectors."""

    provider: Literal["local", "openai"] = "local"
    """``local``: the packaged all-MiniLM-L6-v2 run in numpy, offline. ``openai``: an
    OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, Ollama, vLLM, llama.cpp)."""
    model: str | None = None
    """Model name sent to the provider (required for ``openai``; ignored for ``local``)."""
    base_url: str | None = None
    """Root of the OpenAI-compatible API, e.g. ``http://127.0.0.1:11434/v1``."""
    api_key_env: str | None = None
    """Name of the environment variable holding the provider credential (never the value)."""
    dimension: int | None = Field(default=None, gt=0)
    """Vector size the provider returns; discovered from the first call when unset."""
    batch_size: int = Field(default=32, gt=0, le=1024)
    blas_threads: int | None = Field(default=1, gt=0)
    """BLAS threads for the local model; 1 measured fastest on shared CPUs, null = BLAS default."""
    runtime: Literal["numpy", "onnx", "onnx-int8"] = "onnx-int8"
    """Local model runtime for queries and small batches: ``onnx-int8`` (a query in a few
    milliseconds; its built graph is cached on disk, so only the first process on a
    machine pays the seconds it takes to build), ``numpy`` (the reference) or ``onnx``."""
    bulk_runtime: Literal["numpy", "onnx", "onnx-int8"] = "onnx-int8"
    """Local model runtime for 16 texts or more (ingest, re-embedding); ``onnx-int8`` is
    several times faster than numpy, its vectors within cosine 0.99 of the reference."""
    timeout_s: float = Field(default=60.0, gt=0)


class SecretsConfig(StrictModel):
    """What to do with text that contains a credential."""

    action: Literal["redact", "refuse"] = "redact"
    """``redact`` replaces each secret with ``[REDACTED:kind]``; ``refuse`` rejects the entry."""
    refuse_private_keys: bool = True
    """Private key blocks are refused even when ``action`` is ``redact``."""
    entropy_threshold: float = Field(default=4.0, gt=0, le=8)
    """Shannon entropy (bits per character) above which a long opaque token is a secret."""


class IngestConfig(StrictModel):
    """Repository ingestion limits."""

    max_file_bytes: int = Field(default=512_000, gt=0)
    """Files larger than this are skipped (and counted)."""
    max_chunk_lines: int = Field(default=120, gt=4)
    """Longer functions, classes and sections are cut into windows of at most this many lines."""


class HooksConfig(StrictModel):
    """Claude Code hooks."""

    project: str | None = None
    """Project namespace for hooks; default: the name of the git repository root folder."""
    session_start_entries: int = Field(default=8, ge=0, le=50)
    """How many entries SessionStart adds to the context."""
    time_budget_s: float = Field(default=20.0, gt=0)
    """A hook stops working and exits after this long, leaving Claude Code unblocked."""


class KnowledgeSection(StrictModel):
    """Knowledge store settings: location, embedding model, retention."""

    path: str | None = None
    """Folder or object-storage URI (``s3://bucket/kb``); default ``$ORCHESTRA_HOME/knowledge``."""
    storage_options: dict[str, str] = Field(default_factory=dict)
    """Passed to LanceDB for object storage (region, endpoint); no credentials in files."""
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    memory_scan_max_rows: int = Field(default=50_000, ge=0)
    """Stores with at most this many entries are searched by vector exactly, in memory
    (about 1.5 KB an entry at 384 dimensions: 77 MB at 50,000); larger ones by LanceDB,
    with the vector index once built. 0 turns the in-memory search off."""
    retention_days: dict[str, int] = Field(
        default_factory=lambda: {"note": 90, "code": 365, "doc": 365}
    )
    """Maximum age in days per kind for ``orchestra kb prune``; kinds not listed are kept."""
