"""Fixtures for the knowledge tests: the real packaged model, loaded once per session."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestra.knowledge.embeddings import LocalEmbedder
from orchestra.knowledge.minilm import MiniLMEncoder
from orchestra.knowledge.store import KnowledgeStore


@pytest.fixture(scope="session")
def encoder() -> MiniLMEncoder:
    """all-MiniLM-L6-v2 from the installed package (about a second to load)."""
    return MiniLMEncoder()


@pytest.fixture(scope="session")
def int8_encoder() -> MiniLMEncoder:
    """The int8 ONNX Runtime model, the default for queries and bulk batches.

    Its graph comes from the user's model cache (``~/.cache/orchestra/models``, as in
    use): building it takes 2-7 s, once per machine; loading it, a fraction of a second.
    """
    return MiniLMEncoder(runtime="onnx-int8")


@pytest.fixture
def embedder(encoder: MiniLMEncoder) -> LocalEmbedder:
    # numpy for bulk batches too: building the int8 model per test would cost seconds;
    # the int8 runtime has its own tests (test_minilm, test_ingest).
    return LocalEmbedder(encoder=encoder, bulk_encoder=encoder)


@pytest.fixture
def store(tmp_path: Path, embedder: LocalEmbedder) -> KnowledgeStore:
    return KnowledgeStore.open(tmp_path / "kb", embedder=embedder)


def fake_vector(text: str, dimension: int) -> list[float]:
    """Deterministic bag-of-words vector: the loopback provider's 'model' (test only)."""
    vector = np.zeros(dimension)
    for word in text.lower().split():
        bucket = int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimension
        vector[bucket] += 1.0
    vector[0] += 0.01  # never all zeros
    return [float(x) for x in vector]


class EmbeddingServer:
    """An OpenAI-compatible /v1/embeddings server on a free loopback port."""

    def __init__(self, dimension: int = 16, status: int = 200) -> None:
        self.dimension = dimension
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.auth.append(self.headers.get("Authorization"))
                if self.path != "/v1/embeddings" or server.status != 200:
                    payload = json.dumps({"error": {"message": "nope"}}).encode()
                    self.send_response(404 if self.path != "/v1/embeddings" else server.status)
                else:
                    data = [
                        {
                            "object": "embedding",
                            "index": i,
                            "embedding": fake_vector(t, server.dimension),
                        }
                        for i, t in enumerate(body["input"])
                    ]
                    data.reverse()  # the client must order by "index", not by position
                    payload = json.dumps(
                        {"object": "list", "data": data, "model": body["model"]}
                    ).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> EmbeddingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def embedding_server() -> Iterator[EmbeddingServer]:
    with EmbeddingServer() as server:
        yield server
