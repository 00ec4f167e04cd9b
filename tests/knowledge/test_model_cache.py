"""The on-disk cache of built ONNX graphs: built once, read back, corruption rebuilt."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from orchestra.config.knowledge import EmbeddingConfig
from orchestra.knowledge import model_cache, onnx_runtime
from orchestra.knowledge.embeddings import LocalEmbedder, embedder_from_config
from orchestra.knowledge.minilm import MiniLMEncoder

from .test_minilm import REFERENCE


def counting_build(data: bytes) -> tuple[list[int], Callable[[], bytes]]:
    calls: list[int] = []

    def build() -> bytes:
        calls.append(1)
        return data

    return calls, build


def test_a_graph_is_built_once_then_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "g.onnx"
    calls, build = counting_build(b"graph-bytes")
    assert model_cache.cached_graph(path, build) == (b"graph-bytes", False)
    assert model_cache.cached_graph(path, build) == (b"graph-bytes", True)
    assert len(calls) == 1
    # Written atomically: no temporary file left beside it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["g.onnx"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_a_corrupt_cache_file_is_rebuilt_and_rewritten(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "g.onnx"
    calls, build = counting_build(b"graph-bytes" * 100)
    model_cache.cached_graph(path, build)
    data = path.read_bytes()
    broken = {"truncate": data[:-10], "flip": data[:-1] + b"\x00", "empty": b""}[damage]
    path.write_bytes(broken)
    assert model_cache.read_cached(path) is None
    assert model_cache.cached_graph(path, build) == (b"graph-bytes" * 100, False)
    assert len(calls) == 2
    assert model_cache.read_cached(path) == b"graph-bytes" * 100


def test_an_unwritable_cache_still_gives_the_built_graph(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    _, build = counting_build(b"g")
    assert model_cache.cached_graph(blocker / "g.onnx", build) == (b"g", False)
    assert model_cache.weights_digest(blocker, blocker / "sub")  # memo not written: no error


def test_the_key_covers_package_version_weights_and_variant() -> None:
    base = {"package_version": "0.1.0", "weights_sha256": "a" * 64, "variant": "onnx-int8"}
    changed = [{"package_version": "0.2.0"}, {"weights_sha256": "b" * 64}, {"variant": "onnx"}]
    keys = {model_cache.cache_key(**{**base, **change}) for change in [{}, *changed]}
    assert len(keys) == 4
    assert model_cache.cache_key(**base) == model_cache.cache_key(**base)


def test_the_weights_digest_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights v1")
    memo = tmp_path / "cache"
    assert model_cache.weights_digest(weights, memo) == hashlib.sha256(b"weights v1").hexdigest()
    assert (memo / "weights-digests.json").is_file()
    weights.write_bytes(b"weights version 2")  # another size: the memo no longer applies
    assert (
        model_cache.weights_digest(weights, memo)
        == hashlib.sha256(b"weights version 2").hexdigest()
    )


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRA_MODEL_CACHE", "/srv/models")
    assert model_cache.cache_dir() == Path("/srv/models")
    monkeypatch.delenv("ORCHESTRA_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/xdg")
    assert model_cache.cache_dir() == Path("/srv/xdg/orchestra/models")


def test_a_second_int8_model_loads_from_the_cache_without_building(
    int8_encoder: MiniLMEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session's int8 model built (or found) the graph in the cache; another process
    # (here, another encoder) must read it, not build it, and embed exactly as it does.
    def no_build(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the graph was rebuilt instead of read from the cache")

    monkeypatch.setattr(onnx_runtime, "build_graph", no_build)
    loaded = MiniLMEncoder(runtime="onnx-int8")
    texts = [s for s in REFERENCE["sentences"] if len(s) < 200]  # the short ones: fast
    assert np.array_equal(loaded.encode(texts), int8_encoder.encode(texts))


def test_queries_use_the_cached_int8_model_by_default(int8_encoder: MiniLMEncoder) -> None:
    embedder = embedder_from_config(EmbeddingConfig())
    assert isinstance(embedder, LocalEmbedder)
    assert embedder.encoder().runtime == "onnx-int8"
    query = ["where do we keep refunds"]
    assert np.array_equal(embedder.embed(query), int8_encoder.encode(query))
