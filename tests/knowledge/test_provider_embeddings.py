"""Provider embeddings over an OpenAI-compatible /v1/embeddings on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from orchestra.config.knowledge import EmbeddingConfig, KnowledgeSection
from orchestra.errors import KnowledgeError
from orchestra.knowledge import KnowledgeStore
from orchestra.knowledge.embeddings import (
    LocalEmbedder,
    ProviderEmbedder,
    embed_async,
    embedder_from_config,
)

from .conftest import EmbeddingServer, fake_vector


def test_provider_vectors_are_ordered_batched_and_normalised(
    embedding_server: EmbeddingServer,
) -> None:
    embedder = ProviderEmbedder(
        base_url=embedding_server.base_url, model="nomic-embed-text", batch_size=2
    )
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    expected = np.asarray([fake_vector(t, 16) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vectors, expected, atol=1e-6)
    assert [r["input"] for r in embedding_server.requests] == [
        ["alpha beta", "gamma"],
        ["delta epsilon zeta"],
    ]
    assert all(r["model"] == "nomic-embed-text" for r in embedding_server.requests)
    assert embedder.dimension == 16


def test_config_builds_provider_with_key_from_environment(
    embedding_server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TEST_EMBED_KEY", "local-test-key")
    config = KnowledgeSection(
        embedding=EmbeddingConfig(
            provider="openai",
            base_url=embedding_server.base_url,
            model="fake",
            api_key_env="TEST_EMBED_KEY",
        )
    )
    store = KnowledgeStore.open(tmp_path / "kb", config)
    entry_id = store.add("Provider embeddings work end to end.", "note", "shop")
    assert store.search("provider embeddings", k=1)[0].entry.id == entry_id
    assert store.recorded_model() == (f"openai:fake@{embedding_server.base_url}/embeddings", 16)
    assert set(embedding_server.auth) == {"Bearer local-test-key"}


def test_provider_errors_are_clear(tmp_path: Path) -> None:
    with EmbeddingServer(status=500) as server:
        embedder = ProviderEmbedder(base_url=server.base_url, model="m")
        with pytest.raises(KnowledgeError, match="HTTP 500") as info:
            embedder.embed(["x"])
        assert info.value.hint
    down = ProviderEmbedder(
        base_url="http://127.0.0.1:9/v1",
        model="m",
        transport=httpx.HTTPTransport(retries=0),
        timeout_s=2,
    )
    with pytest.raises(KnowledgeError, match="unreachable"):
        down.embed(["x"])
    with pytest.raises(KnowledgeError, match="base_url"):
        embedder_from_config(EmbeddingConfig(provider="openai"))
    with pytest.raises(KnowledgeError, match="NOT_SET_ANYWHERE"):
        embedder_from_config(
            EmbeddingConfig(
                provider="openai", base_url="http://x/v1", model="m", api_key_env="NOT_SET_ANYWHERE"
            )
        )


def test_embed_async_runs_off_the_event_loop(embedder: LocalEmbedder) -> None:
    async def main() -> tuple[np.ndarray, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        task = asyncio.create_task(ticker())
        vectors = await embed_async(embedder, ["the event loop keeps running"] * 64)
        task.cancel()
        return vectors, ticks

    vectors, ticks = asyncio.run(main())
    assert vectors.shape == (64, 384)
    assert ticks > 0  # the loop served other tasks while the model ran
