"""Knowledge store benchmark (``python -m bench.knowledge``; part of ``make bench``).

Measures, on this machine:

1. embedding speed of the MiniLM runtimes (numpy, ONNX Runtime float32 and int8) on code
   chunks and short sentences, each runtime's vectors against the numpy reference, and the
   same texts through sentence-transformers + torch when ``ORCHESTRA_BENCH_TORCH_PYTHON``
   names an interpreter that has them (the ratio is printed; torch is never a dependency);
2. ingest rate (chunks/s, chunking + embedding + writing) of three real packages, with
   today's embedding path (numpy for every batch) and the new one (int8 ONNX Runtime for
   bulk batches) in the same run, and their ratio;
3. recall@5, recall@10 and MRR@10 of vector, BM25 and hybrid search on the labelled sets
   of ``bench/knowledge/sets`` (per set and pooled, bootstrap 95% intervals), and whether
   hybrid holds against the better single mode;
4. query latency p50/p99 at 10,000, 50,000 and 100,000 entries, filtered and unfiltered,
   per vector search path: the in-memory exact scan (the default up to
   ``knowledge.memory_scan_max_rows``), LanceDB's exact scan up to 50,000 entries and the
   IVF-HNSW index from 50,000 (with its recall@10 against the exact scan); queries
   embedded by the default runtime (int8, its graph loaded from the on-disk cache), and
   the query embedding's own time on each runtime (``--latency-only`` runs just this).

The large stores are formed from real text with real embeddings: a *base set* of
docstring paragraphs from the packages installed in this environment is embedded for real
by the packaged model; the 10,000 and 100,000-entry stores hold that base set repeated
under distinct project namespaces (``p000``, ``p001``, ...), each copy keeping its real
text and real vector. Repetition keeps the per-row search work identical to distinct data
for exact search and BM25; it is stated with every number it affects.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.knowledge import quality
from orchestra.config.knowledge import KnowledgeSection
from orchestra.knowledge import KnowledgeStore, NewEntry, model_cache
from orchestra.knowledge.chunking import chunk_file
from orchestra.knowledge.embeddings import LocalEmbedder
from orchestra.knowledge.minilm import MiniLMEncoder, model_dir

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "tests" / "knowledge" / "data" / "click_queries.json"
TARGET_P50_MS = 20.0
SHORT = "We decided to keep refunds in their own service so payments stay small."


def site_packages() -> Path:
    spec = importlib.util.find_spec("click")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parents[1]


def click_texts() -> list[str]:
    package = site_packages() / "click"
    modules = json.loads(QUERIES.read_text())["modules"]
    chunks = [c for m in modules for c in chunk_file(m, (package / m).read_text())]
    return [f"{c.title}\n{c.stored_text}" for c in chunks]


def docstring_corpus(limit: int) -> list[tuple[str, str]]:
    """``(qualified name, first docstring paragraph)`` from installed packages, deduplicated."""
    seen: set[str] = set()
    found: list[tuple[str, str]] = []
    packages = [
        "sqlalchemy",
        "pydantic",
        "rich",
        "httpx",
        "click",
        "typer",
        "alembic",
        "pyarrow",
        "starlette",
        "yaml",
        "hypothesis",
        "numpy",
        "uvicorn",
        "anyio",
    ]
    base = site_packages()
    for name in packages:
        for path in sorted((base / name).rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    continue
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                para = " ".join(doc.strip().split("\n\n")[0].split())
                if 40 <= len(para) <= 600 and para not in seen:
                    seen.add(para)
                    rel = path.relative_to(base).as_posix()
                    found.append((f"{rel}::{node.name}", para))
                    if len(found) >= limit:
                        return found
    return found


def rate(encoder: MiniLMEncoder, texts: list[str]) -> float:
    started = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - started)


TORCH_SCRIPT = """
import json, sys, time
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
data = json.load(sys.stdin)
out = {}
for name, texts in data.items():
    model.encode(texts[:4])
    t = time.perf_counter(); model.encode(texts, batch_size=32)
    out[name] = len(texts) / (time.perf_counter() - t)
print(json.dumps(out))
"""


def torch_rates(python: str, texts: dict[str, list[str]]) -> dict[str, float] | None:
    try:
        done = subprocess.run(
            [python, "-c", TORCH_SCRIPT, str(model_dir())],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            timeout=1800,
            check=True,
        )
        result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        print(f"  torch reference unavailable: {type(exc).__name__}")
        return None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def latency(
    store: KnowledgeStore, queries: list[str], mode: str, project: str | None
) -> tuple[float, float]:
    samples = []
    for q in queries:
        started = time.perf_counter()
        store.search(q, project=project, k=10, mode=mode)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - started) * 1000)
    return percentile(samples, 50), percentile(samples, 99)


def latency_variants(total: int) -> list[tuple[str, int, bool]]:
    """``(label, knowledge.memory_scan_max_rows, vector index)`` measured at ``total``.

    The in-memory exact scan first (the default up to 50,000 entries; above, measured to
    compare, and the reference for the index's recall), then LanceDB's exact scan (the path
    before the in-memory copy) up to 50,000, and the IVF-HNSW index from 50,000 (the
    default above). The bitmap indexes of the filter columns come with the vector index.
    """
    default = KnowledgeSection().memory_scan_max_rows
    variants = [("in-memory exact", total, False)]
    if total <= default:
        variants.append(("LanceDB exact", 0, False))
    if total >= default:
        variants.append(("IVF-HNSW index", 0, True))
    return variants


def has_index(store: KnowledgeStore) -> bool:
    table = store._tables.entries(for_vectors=False)
    return any("vector" in ix.columns for ix in table.list_indices())


def build_store(
    folder: Path,
    embedder: LocalEmbedder,
    base: list[tuple[str, str]],
    vectors: np.ndarray,
    total: int,
) -> KnowledgeStore:
    store = KnowledgeStore.open(folder, embedder=embedder)
    copies = -(-total // len(base))
    written = 0
    for copy in range(copies):
        take = min(len(base), total - written)
        items = [
            NewEntry(text=text, kind="api", project=f"p{copy:03d}", title=title)
            for title, text in base[:take]
        ]
        store.add_many(items, vectors=vectors[:take])
        written += take
    store.optimize(vector_index=False)  # measured exact first; the index comes later
    return store


def base_set(
    embedder: LocalEmbedder, size: int, cache: Path | None
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The base set and its real embeddings, from ``cache`` when an earlier run saved them."""
    saved = cache / f"base-{size}.npz" if cache else None
    if saved is not None and saved.exists():
        data = np.load(saved)
        base = list(zip(data["titles"].tolist(), data["texts"].tolist(), strict=True))
        print(f"base set: {len(base)} docstring paragraphs and their embeddings from {saved}")
        return base, data["vectors"]
    started = time.perf_counter()
    base = docstring_corpus(size)
    vectors = embedder.embed([f"{t}\n{x}" for t, x in base])
    seconds = time.perf_counter() - started
    print(
        f"base set: {len(base)} docstring paragraphs embedded for real in {seconds:.1f}s "
        f"({len(base) / seconds:.1f}/s)"
    )
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        titles = np.array([t for t, _ in base])
        texts = np.array([x for _, x in base])
        np.savez(saved, titles=titles, texts=texts, vectors=vectors)
    return base, vectors


def latency_section(
    args: argparse.Namespace,
    work: Path,
    embedder: LocalEmbedder,
    runtimes: dict[str, MiniLMEncoder],
    queries: list[str],
) -> None:
    """4. Query latency at 10,000, 50,000 and 100,000 entries, per search path."""
    base, vectors = base_set(embedder, args.base, args.cache)
    query_texts = list(queries)
    query_texts = (query_texts * (args.queries // len(query_texts) + 1))[: args.queries]
    for label, model in runtimes.items():
        samples = []
        for q in query_texts:
            t0 = time.perf_counter()
            model.encode([q])
            samples.append((time.perf_counter() - t0) * 1000)
        print(
            f"query embedding alone ({label}): p50 {percentile(samples, 50):.1f} ms, "
            f"p99 {percentile(samples, 99):.1f} ms; load average {os.getloadavg()[0]:.2f}"
        )
    sizes = [int(n) for n in args.sizes.split(",")]
    sizes = [n for n in sizes if n < 100_000] if args.skip_100k else sizes
    for total in sizes:
        t0 = time.perf_counter()
        folder = work / f"kb-{total}"
        build_store(folder, embedder, base, vectors, total)
        print(
            f"{total:,} entries ({-(-total // len(base))} copies of the base set under "
            f"distinct projects), loaded in {time.perf_counter() - t0:.1f}s"
        )
        exact_ids: list[set[str]] = []
        for label, memory_rows, indexed in latency_variants(total):
            big = KnowledgeStore.open(
                folder, KnowledgeSection(memory_scan_max_rows=memory_rows), embedder=embedder
            )
            if indexed and not has_index(big):
                t1 = time.perf_counter()
                big.create_vector_index(min_rows=0)
                print(f"  built vector index in {time.perf_counter() - t1:.1f}s")
            t1 = time.perf_counter()
            big.search(query_texts[0], k=10, mode="vector")  # starts loading the in-memory copy
            first = (time.perf_counter() - t1) * 1000
            in_memory = big._tables.vectors.wait(timeout=600)
            loaded = (time.perf_counter() - t1) * 1000
            print(
                f"  {label}: first query {first:.0f} ms; in-memory copy "
                + (f"loaded {loaded:.0f} ms after it started" if in_memory else "not used")
            )
            # Inside one project every vector is distinct, so top-10 overlap between the
            # exact scan and the index is well defined (the index's recall@10).
            top = [
                {str(h.entry.id) for h in big.search(q, project="p001", k=10, mode="vector")}
                for q in query_texts[:40]
            ]
            if not exact_ids:
                exact_ids = top
            else:
                overlap = statistics.mean(
                    len(a & b) / max(1, len(a)) for a, b in zip(exact_ids, top, strict=True)
                )
                print(f"  {label}: recall@10 against the in-memory exact scan {overlap:.3f}")
            for mode in ("vector", "text", "hybrid"):
                for project in (None, "p001"):
                    p50, p99 = latency(big, query_texts, mode, project)
                    scope = "project filter" if project else "no filter"
                    print(
                        f"  {label:>16} {mode:>6} {scope:>14}: p50 {p50:6.1f} ms  "
                        f"p99 {p99:6.1f} ms  p50/target {p50 / TARGET_P50_MS:.2f}  "
                        f"(load {os.getloadavg()[0]:.1f})"
                    )
            big.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=5000, help="real embeddings in the base set")
    parser.add_argument("--queries", type=int, default=100, help="queries per latency sample")
    parser.add_argument("--skip-100k", action="store_true", help="no 100,000-entry store")
    parser.add_argument(
        "--cache",
        type=Path,
        help="keep the embedded base set in this folder and reuse it on later runs "
        "(saves the few minutes of embedding it; the stores are still built each run)",
    )
    parser.add_argument("--latency-only", action="store_true", help="only the latency section (4.)")
    parser.add_argument(
        "--sizes", default="10000,50000,100000", help="store sizes of the latency section"
    )
    parser.add_argument(
        "--ingest-only",
        action="store_true",
        help="stop after the embedding speeds and the ingest rates (sections 1 and 2)",
    )
    parser.add_argument(
        "--skip-latency",
        action="store_true",
        help="stop after the retrieval quality (sections 1 to 3; no latency stores)",
    )
    args = parser.parse_args(argv)

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    encoder = MiniLMEncoder()
    loads = []
    for _ in range(2):  # the first may build and cache the graph; the second reads the cache
        t0 = time.perf_counter()
        int8 = MiniLMEncoder(runtime="onnx-int8")
        loads.append(time.perf_counter() - t0)
    print(
        f"int8 model: first load {loads[0]:.2f}s (builds the graph unless cached), "
        f"from the on-disk cache {loads[1]:.2f}s ({model_cache.cache_dir()})"
    )
    # The defaults: int8 for queries and bulk batches alike.
    embedder = LocalEmbedder(encoder=int8, bulk_encoder=int8)
    work = Path(tempfile.mkdtemp(prefix="orchestra-bench-kb-"))
    if args.latency_only:
        try:
            queries = [q.query for s in quality.labelled_sets() for q in s.queries]
            latency_section(args, work, embedder, {"numpy": encoder, "onnx-int8": int8}, queries)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        # 1. embedding speed ------------------------------------------------------------
        code = click_texts()
        short = [SHORT] * 256
        encoder.encode(code[:4])
        numpy_rates = {"code": rate(encoder, code), "short": rate(encoder, short)}
        print(
            f"embedding (numpy): {numpy_rates['code']:.1f} code chunks/s "
            f"({len(code)} chunks), {numpy_rates['short']:.1f} short sentences/s"
        )
        reference = encoder.encode(code)
        for runtime in ("onnx", "onnx-int8"):
            other = MiniLMEncoder(runtime=runtime)  # type: ignore[arg-type]
            other.encode(code[:4])
            code_rate, short_rate = rate(other, code), rate(other, short)
            cosine = (other.encode(code) * reference).sum(axis=1)
            print(
                f"embedding ({runtime}): {code_rate:.1f} code chunks/s "
                f"({code_rate / numpy_rates['code']:.2f}x numpy), {short_rate:.1f} short "
                f"sentences/s; cosine to numpy min {cosine.min():.4f} mean {cosine.mean():.4f}"
            )
        torch_python = os.environ.get("ORCHESTRA_BENCH_TORCH_PYTHON")
        if torch_python:
            ref = torch_rates(torch_python, {"code": code, "short": short})
            if ref:
                print(
                    f"embedding (torch):  {ref['code']:.1f} code chunks/s, "
                    f"{ref['short']:.1f} short sentences/s"
                )
                print(
                    f"  ratio numpy/torch: code {numpy_rates['code'] / ref['code']:.2f}, "
                    f"short {numpy_rates['short'] / ref['short']:.2f}"
                )

        # 2. ingest rate and 3. retrieval quality ------------------------------------------
        sets = quality.labelled_sets()
        rates = {}
        for label, bulk in (("today (numpy)", "numpy"), ("new (onnx-int8)", "onnx-int8")):
            folder = work / f"ingest-{bulk}"
            folder.mkdir()
            # today: numpy for every batch; new: the defaults (int8 for every batch)
            timed = (
                LocalEmbedder(encoder=encoder, bulk_encoder=encoder)
                if bulk == "numpy"
                else embedder
            )
            t0 = time.perf_counter()
            kb = KnowledgeStore.open(folder / "kb", embedder=timed)
            chunks = quality.build_corpus(kb, [s for s in sets if s.package], folder)
            rates[bulk] = chunks / (time.perf_counter() - t0)
            print(
                f"ingest {label:>16}: {chunks} chunks at {rates[bulk]:.1f} chunks/s "
                f"(load average {os.getloadavg()[0]:.2f})"
            )
            if bulk == "onnx-int8":
                store = kb
        print(f"  ingest ratio new/today: {rates['onnx-int8'] / rates['numpy']:.2f}x")
        if args.ingest_only:
            print(f"load average at end {os.getloadavg()[0]:.2f}")
            return
        quality.build_corpus(store, [s for s in sets if not s.package], work)
        quality.check_labels(store, sets)
        results = quality.measure(store, sets)
        print("retrieval quality (95% bootstrap intervals over queries, 2,000 resamples):")
        print("\n".join(quality.table(results)))
        print("hybrid against the better single mode (paired bootstrap of the difference):")
        print("\n".join(quality.verdict(results)))
        print("fusion rules on the same candidates (how hybrid search's rule was chosen):")
        print("\n".join(quality.fusion_grid(store, sets)))
        labelled = [q for s in sets for q in s.queries]
        if args.skip_latency:
            print(f"load average at end {os.getloadavg()[0]:.2f}")
            return

        # 4. latency at 10k, 50k and 100k ---------------------------------------------------
        latency_section(
            args, work, embedder, {"numpy": encoder, "onnx-int8": int8}, [q.query for q in labelled]
        )
        print(f"load average at end {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
