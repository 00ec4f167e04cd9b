"""An on-disk cache of the built ONNX graphs, so a process does not rebuild them.

Building the int8 model (writing the graph, quantising it) takes seconds per process; with
the result cached, a one-shot CLI search or a hook loads it in a fraction of that and can
embed its query on the fast runtime.

- **Where:** ``$ORCHESTRA_MODEL_CACHE``, else ``$XDG_CACHE_HOME/orchestra/models``, else
  ``~/.cache/orchestra/models`` (a user cache, not the state folder: a store may live on
  object storage, and the model is the same for every project).
- **Key:** the model package's version, the sha256 of its weights file, the sha256 of the
  graph-building code (:mod:`orchestra.knowledge.onnx_runtime`, which also holds the
  quantisation settings), the ``onnx`` and ``onnxruntime`` versions and the variant. A
  change to any of them is a new file; nothing stale is ever loaded.
- **Integrity:** each file starts with the sha256 of the graph that follows; written to a
  temporary file and renamed into place (atomic), so a reader sees a whole file or none. A
  file that fails its check is rebuilt and rewritten.
- The weights' sha256 (90 MB, most of a second on a busy machine) is remembered beside the
  cache, keyed by the file's path, size and modification time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

_DIGEST = hashlib.sha256().digest_size


def cache_dir() -> Path:
    """Where built graphs are kept (see the module docstring)."""
    explicit = os.environ.get("ORCHESTRA_MODEL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "orchestra" / "models"


def model_version(distribution: str) -> str:
    """The installed version of ``distribution`` (``unknown`` when not installed)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def weights_digest(path: Path, folder: Path) -> str:
    """sha256 of ``path``, remembered in ``folder`` by path, size and modification time."""
    stat = path.stat()
    stamp = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    memo = folder / "weights-digests.json"
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
        for item in known if isinstance(known, list) else []:
            if isinstance(item, dict) and all(item.get(k) == v for k, v in stamp.items()):
                return str(item["sha256"])
    except (OSError, ValueError, KeyError):
        known = []
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entries = [i for i in known if isinstance(i, dict) and i.get("path") != stamp["path"]]
    try:
        _write_atomic(memo, json.dumps([*entries, {**stamp, "sha256": digest}]).encode())
    except OSError as exc:
        logger.warning("could not write %s: %s", memo, exc)
    return digest


def cache_key(*, package_version: str, weights_sha256: str, variant: str) -> str:
    """The hex key of one built graph (see the module docstring for what it covers)."""
    from orchestra.knowledge import onnx_runtime

    parts = {
        "model": package_version,
        "weights": weights_sha256,
        "code": hashlib.sha256(Path(onnx_runtime.__file__).read_bytes()).hexdigest(),
        "onnx": model_version("onnx"),
        "onnxruntime": model_version("onnxruntime"),
        "variant": variant,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_cached(path: Path) -> bytes | None:
    """The graph stored at ``path``, or None when missing, unreadable or corrupt."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    body = data[_DIGEST:]
    if len(data) <= _DIGEST or hashlib.sha256(body).digest() != data[:_DIGEST]:
        logger.warning("model cache %s is corrupt; rebuilding it", path)
        return None
    return body


def cached_graph(path: Path, build: Callable[[], bytes]) -> tuple[bytes, bool]:
    """``(graph bytes, True)`` from the cache at ``path``, or ``(build(), False)`` after
    storing the built graph there. An unwritable cache is not an error: the graph is
    built and used, and the next process builds it again."""
    found = read_cached(path)
    if found is not None:
        return found, True
    data = build()
    try:
        _write_atomic(path, hashlib.sha256(data).digest() + data)
    except OSError as exc:
        logger.warning("could not write the model cache %s: %s", path, exc)
    return data, False
