"""Ingestion: .gitignore respected, binary/huge skipped, incremental by content hash."""

from __future__ import annotations

import shutil
import subprocess
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from orchestra.config.knowledge import IngestConfig, KnowledgeSection
from orchestra.knowledge import KnowledgeStore, ingest_repository
from orchestra.knowledge.embeddings import LocalEmbedder
from orchestra.knowledge.files import list_files, parse_gitignore, walk_with_gitignore
from orchestra.knowledge.minilm import MiniLMEncoder


def make_tree(root: Path) -> None:
    (root / "src").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "build").mkdir()
    (root / "src" / "cart.py").write_text(
        "def add_item(cart, item):\n"
        '    """Put an item in the shopping cart."""\n'
        "    cart.append(item)\n\n\n"
        "def total(cart):\n"
        '    """Sum of prices in the cart."""\n'
        "    return sum(i.price for i in cart)\n"
    )
    (root / "src" / "secret.py").write_text(
        'DEPLOY_KEY = """-----BEGIN RSA PRIVATE KEY-----\n'
        "MIIBOgIBAAJBAK\n"
        '-----END RSA PRIVATE KEY-----"""\n\n\n'
        "def deploy():\n    return 1\n"
    )
    (root / "docs" / "guide.md").write_text(
        "# Guide\n\n## Checkout\nPayments are captured at shipping time.\n"
    )
    (root / "build" / "out.py").write_text("def generated():\n    return 0\n")
    (root / "notes.log").write_text("debug output\n" * 3)
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary")
    (root / "huge.txt").write_text("word " * 40_000)
    (root / ".gitignore").write_text("build/\n*.log\n")


def small_store(tmp_path: Path, embedder: LocalEmbedder) -> KnowledgeStore:
    config = KnowledgeSection(ingest=IngestConfig(max_file_bytes=100_000))
    return KnowledgeStore.open(tmp_path / "kb", config, embedder=embedder)


def test_gitignore_matcher() -> None:
    rules = parse_gitignore("*.log\n/build/\ndocs/**/draft-*.md\n!keep.log\nsecret?.txt\n")
    from orchestra.knowledge.files import _ignored

    assert _ignored(rules, "a/b/x.log", False)
    assert not _ignored(rules, "a/keep.log", False)
    assert _ignored(rules, "build", True)
    assert not _ignored(rules, "src/build", True)  # anchored to the root
    assert _ignored(rules, "docs/a/b/draft-1.md", False)
    assert _ignored(rules, "secret1.txt", False) and not _ignored(rules, "secret12.txt", False)


def test_walk_respects_nested_gitignore(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "src" / ".gitignore").write_text("secret.py\n")
    files = walk_with_gitignore(tmp_path)
    assert "build/out.py" not in files and "notes.log" not in files
    assert "src/secret.py" not in files
    assert "src/cart.py" in files and "docs/guide.md" in files


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_ls_files_is_used_in_a_repository(tmp_path: Path) -> None:
    make_tree(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("docs/\n")  # only git knows this rule
    files = list_files(tmp_path)
    assert "docs/guide.md" not in files
    assert "src/cart.py" in files and "build/out.py" not in files and ".git/HEAD" not in files


def test_ingest_indexes_skips_and_refuses(tmp_path: Path, embedder: LocalEmbedder) -> None:
    repo = tmp_path / "shop"
    make_tree(repo)
    store = small_store(tmp_path, embedder)
    report = ingest_repository(store, repo)
    assert report.project == "shop"
    assert (report.skipped_binary, report.skipped_huge) == (1, 1)
    assert report.chunks_refused == 1  # the private key block, refused by default
    # add_item, total, secret.py::deploy, the two guide sections, and .gitignore itself
    assert report.chunks_added == 6
    assert report.files_indexed == 4
    hits = store.search("put something into the shopping cart", project="shop", k=1)
    entry = hits[0].entry
    assert entry.title == "src/cart.py::add_item"
    assert (entry.source.file, entry.source.start_line, entry.source.end_line) == (
        "src/cart.py",
        1,
        3,
    )
    assert entry.kind == "code" and entry.source.origin == "ingest"
    doc = store.search("when are payments captured", kind="doc", k=1)[0].entry
    assert doc.title == "docs/guide.md#Guide > Checkout"
    assert store.search("generated", mode="text") == []  # build/ is ignored
    assert "MIIBOgIBAAJBAK" not in str([h.entry.text for h in store.search("deploy key", k=10)])


def test_ingest_is_incremental(tmp_path: Path, embedder: LocalEmbedder) -> None:
    repo = tmp_path / "shop"
    make_tree(repo)
    store = small_store(tmp_path, embedder)
    first = ingest_repository(store, repo)
    total = store.stats().total

    again = ingest_repository(store, repo)
    assert again.files_indexed == 0 and again.chunks_added == 0
    assert again.files_unchanged == first.files_indexed
    assert store.stats().total == total

    cart = repo / "src" / "cart.py"
    cart.write_text(cart.read_text().replace("Sum of prices", "Sum of discounted prices"))
    (repo / "docs" / "guide.md").unlink()
    changed = ingest_repository(store, repo)
    assert changed.files_indexed == 1  # only cart.py was re-chunked and re-embedded
    assert changed.chunks_added == 2
    assert changed.files_deleted == 1
    assert changed.chunks_removed == 2 + 2  # old cart.py chunks and both guide sections
    assert store.stats().total == total - 2
    hit = store.search("discounted prices", mode="text", k=1)[0].entry
    assert hit.title == "src/cart.py::total"
    assert store.search("payments captured shipping", mode="text") == []


def test_ingest_rejects_a_missing_folder(tmp_path: Path, embedder: LocalEmbedder) -> None:
    from orchestra.errors import KnowledgeError

    with pytest.raises(KnowledgeError, match="not a folder"):
        ingest_repository(small_store(tmp_path, embedder), tmp_path / "nope")


def test_chunks_ingested_by_the_int8_runtime_are_found_by_numpy_queries(
    tmp_path: Path, encoder: MiniLMEncoder, int8_encoder: MiniLMEncoder
) -> None:
    # The default split: bulk batches (16 texts or more) on int8 ONNX Runtime, queries on
    # numpy. Twenty small functions force the bulk path; the query names none of them.
    repo = tmp_path / "repo"
    repo.mkdir()
    verbs = [
        "parse", "render", "upload", "compress", "encrypt", "resize", "translate", "sort",
        "merge", "archive", "notify", "schedule", "validate", "index", "cache", "log",
        "retry", "stream", "hash", "export",
    ]  # fmt: skip
    body = "\n\n".join(
        f'def {v}_thing(x):\n    """{v.capitalize()} the given thing."""\n    return x'
        for v in verbs
    )
    body += '\n\n\ndef shrink_picture(img, width):\n    """Scale an image down to a width."""\n'
    (repo / "tools.py").write_text(body + "    return img\n")
    embedder = LocalEmbedder(encoder=encoder, bulk_encoder=int8_encoder)
    store = KnowledgeStore.open(tmp_path / "kb", embedder=embedder)
    report = ingest_repository(store, repo, project="demo")
    assert report.chunks_added == 21
    hits = store.search("make a photo smaller", project="demo", k=3, mode="vector")
    assert hits[0].entry.title == "tools.py::shrink_picture"
    assert hits[0].entry.text.startswith("# shrink_picture(img, width) — Scale an image down")


class _RecordingEmbedder:
    """Bag-of-words vectors; records the thread and size of each call."""

    name = "test:recording"
    dimension = 64

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import threading

        self.calls.append((threading.current_thread().name, len(texts)))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, zlib.crc32(word.encode()) % self.dimension] += 1.0
            out[row, 0] += 0.01
        normalised: npt.NDArray[np.float32] = out / np.linalg.norm(out, axis=1, keepdims=True)
        return normalised


def test_ingest_embeds_batches_on_a_worker_thread_and_writes_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestra.knowledge import ingest

    monkeypatch.setattr(ingest, "_BATCH", 4)
    root = tmp_path / "repo"
    root.mkdir()
    for n in range(7):
        body = "".join(f"def f{n}_{i}(x):\n    return x + {i}\n\n\n" for i in range(3))
        (root / f"m{n}.py").write_text(body)
    recorder = _RecordingEmbedder()
    store = KnowledgeStore.open(tmp_path / "kb", embedder=recorder)
    report = ingest_repository(store, root, project="p")
    stored = store.recent("p", limit=100)
    assert report.chunks_added == len(stored) == 21
    # Every batch was embedded off the calling thread, once (the writer reused the vectors).
    assert all(name.startswith("orchestra-embed") for name, _ in recorder.calls)
    assert [size for _, size in recorder.calls] == [6, 6, 6, 3]  # batches of whole files
    # Each stored vector is its own text's vector, whichever batch computed it.
    for entry in stored:
        query = f"{entry.title}\n{entry.text}"  # what the model saw for it
        assert store.search(query, project="p", k=1, mode="vector")[0].entry.id == entry.id
    assert ingest_repository(store, root, project="p").files_unchanged == 7
