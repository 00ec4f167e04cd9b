"""Retrieval quality on labelled sets from real repositories (``bench/knowledge/sets``).

Corpora are the sources of pinned PyPI packages Orchestra did not write (installed by the
``bench`` extra), ingested from site-packages through :func:`ingest_repository`, plus a set
of decision and convention entries written as fixture data. Every mode is run through
the store's public ``search``; intervals are percentile bootstraps over queries
(2,000 resamples, fixed seed).
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from orchestra.knowledge import KnowledgeStore, NewEntry, ingest_repository
from orchestra.knowledge.evaluation import (
    METRICS,
    Interval,
    LabelledSet,
    bootstrap,
    first_relevant_rank,
    load_set,
    metrics_from_ranks,
    paired_difference,
    target_key,
)
from orchestra.knowledge.fusion import (
    adaptive_fusion,
    bm25_gap,
    hybrid_fusion,
    kind_aware_fusion,
    reciprocal_rank_fusion,
)

SETS = Path(__file__).parent / "sets"
MODES = ("vector", "text", "hybrid")
DECISIONS_PROJECT = "payments"


def labelled_sets() -> list[LabelledSet]:
    """Every set under ``bench/knowledge/sets``, code sets first."""
    sets = [load_set(p) for p in sorted(SETS.glob("*.json"))]
    return sorted(sets, key=lambda s: (s.package is None, s.name))


def package_folder(package: str) -> Path:
    """Where ``package`` is installed (its source is the corpus)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed: pip install -e '.[bench]'")
    return Path(next(iter(spec.submodule_search_locations)))


def copy_sources(package: str, into: Path) -> Path:
    """The package's ``.py`` files (not its tests, stubs or caches) copied to ``into``."""
    source = package_folder(package)
    for path in sorted(source.rglob("*.py")):
        rel = path.relative_to(source)
        if "tests" in rel.parts or "__pycache__" in rel.parts:
            continue
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, into / rel)
    return into


def build_corpus(store: KnowledgeStore, sets: Sequence[LabelledSet], work: Path) -> int:
    """Ingest every code set's package (project = set name) and store the fixture entries."""
    chunks = 0
    for labelled in sets:
        if labelled.package:
            repo = copy_sources(labelled.package, work / labelled.name)
            chunks += ingest_repository(store, repo, project=labelled.name).chunks_added
        if labelled.entries:
            items = [
                NewEntry(text=e.text, kind=e.kind, project=DECISIONS_PROJECT, title=e.title)
                for e in labelled.entries
            ]
            chunks += len(store.add_many(items))
    return chunks


def scope(labelled: LabelledSet) -> str | None:
    """Code questions search their repository; decision questions search the whole store."""
    return labelled.name if labelled.package else None


def ranks_for(
    store: KnowledgeStore, labelled: LabelledSet, mode: str, depth: int = 10
) -> list[int | None]:
    """First relevant rank of every query of ``labelled`` in ``mode``."""
    out: list[int | None] = []
    for item in labelled.queries:
        hits = store.search(item.query, project=scope(labelled), k=depth, mode=mode)  # type: ignore[arg-type]
        out.append(first_relevant_rank([h.entry.title for h in hits], item.targets))
    return out


@dataclass(frozen=True)
class SetResult:
    """Ranks per mode for one set (or the pooled sets)."""

    name: str
    ranks: dict[str, list[int | None]]


def check_labels(store: KnowledgeStore, sets: Sequence[LabelledSet]) -> None:
    """Every target names a stored entry, or a typo would silently lower recall."""
    for labelled in sets:
        project = labelled.name if labelled.package else DECISIONS_PROJECT
        kinds = ["code"] if labelled.package else ["decision", "convention"]
        titles = {target_key(e.title) for e in store.recent(project, kinds, limit=100_000)}
        wanted = {target_key(t) for q in labelled.queries for t in q.targets}
        missing = wanted - titles
        if missing:
            raise SystemExit(f"{labelled.name}: targets not in the corpus: {sorted(missing)}")


def measure(store: KnowledgeStore, sets: Sequence[LabelledSet]) -> list[SetResult]:
    """Ranks of every mode on every set, then the pooled set."""
    results = [SetResult(s.name, {m: ranks_for(store, s, m) for m in MODES}) for s in sets]
    pooled = {m: [r for res in results for r in res.ranks[m]] for m in MODES}
    return [*results, SetResult("pooled", pooled)]


def _cell(interval: Interval) -> str:
    return f"{interval.value:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def table(results: Sequence[SetResult]) -> list[str]:
    """Markdown rows: set, mode, queries, recall@5, recall@10, MRR@10 with 95% intervals."""
    rows = [
        "| set | mode | queries | recall@5 | recall@10 | MRR@10 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        for mode in MODES:
            ranks = result.ranks[mode]
            ci = bootstrap(ranks)
            cells = " | ".join(_cell(ci[m]) for m in METRICS)
            label = "BM25" if mode == "text" else mode
            rows.append(f"| {result.name} | {label} | {len(ranks)} | {cells} |")
    return rows


def verdict(results: Sequence[SetResult]) -> list[str]:
    """Hybrid minus the better single mode per set, with paired bootstrap intervals.

    "holds" when the interval's upper end is >= 0 (hybrid is not worse beyond the
    choice of queries); on the pooled set the point difference must also be > 0.
    """
    lines = []
    for result in results:
        for metric in ("recall@10", "mrr"):
            single = max(
                ("vector", "text"),
                key=lambda m: bootstrap(result.ranks[m], samples=1)[metric].value,
            )
            diff = paired_difference(result.ranks["hybrid"], result.ranks[single])[metric]
            ok = diff.high >= 0 and (result.name != "pooled" or diff.value > 0)
            lines.append(
                f"  {result.name:>15} {metric:>9}: hybrid - {single} = {diff.value:+.3f} "
                f"[{diff.low:+.3f}, {diff.high:+.3f}] {'holds' if ok else 'FAILS'}"
            )
    return lines


FusionRule = Callable[[list[Any], list[Any]], list[Any]]
"""``(vector hits, BM25 hits) -> fused hits``; hits are ``((id, title, kind), score)``."""


def fusion_rules() -> dict[str, FusionRule]:
    """The candidate rules the fusion weight was chosen among."""
    rules: dict[str, FusionRule] = {}
    for weight in (0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9):
        rules[f"scores w={weight}"] = partial(_scores, weight=weight)
    for sure in (0.4, 0.5, 0.6):
        for unsure in (0.7, 0.8):
            for gap in (0.1, 0.2):
                for pin in (True, False):
                    name = f"adaptive {sure}/{unsure} gap={gap}{' pin' if pin else ''}"
                    rules[name] = partial(_adaptive, sure=sure, unsure=unsure, gap=gap, pin=pin)
    for text_weight in (0.3, 0.5, 0.7, 1.0):
        for k in (5, 10, 20, 60):
            rules[f"rrf bm25={text_weight} k={k}"] = partial(_rrf, text_weight=text_weight, k=k)
    rules["kind-aware (ships)"] = _kind_aware
    return rules


def _kind_aware(vector: list[Any], text: list[Any]) -> list[Any]:
    top_kind = vector[0][0][2] if vector else None
    return kind_aware_fusion(vector, text, vector_top_kind=top_kind)


def _scores(vector: list[Any], text: list[Any], *, weight: float) -> list[Any]:
    return hybrid_fusion(vector, text, vector_weight=weight)


def _adaptive(
    vector: list[Any], text: list[Any], *, sure: float, unsure: float, gap: float, pin: bool
) -> list[Any]:
    if pin:
        return adaptive_fusion(vector, text, clear_gap=gap, sure_weight=sure, unsure_weight=unsure)
    weight = sure if text and bm25_gap(text) >= gap else unsure
    return hybrid_fusion(vector, text, vector_weight=weight)


def _rrf(vector: list[Any], text: list[Any], *, text_weight: float, k: int) -> list[Any]:
    ranked = [[key for key, _ in vector], [key for key, _ in text]]
    return reciprocal_rank_fusion(ranked, k=k, weights=[1.0, text_weight])


def fusion_grid(store: KnowledgeStore, sets: Sequence[LabelledSet]) -> list[str]:
    """Every candidate rule on the 50-candidate lists hybrid search fuses, per set and
    pooled, then leave-one-set-out: the rule best on the other sets, scored on the held-out.
    """
    lists: dict[str, list[tuple[tuple[str, ...], list[Any], list[Any]]]] = {}
    for labelled in sets:
        rows = lists.setdefault(labelled.name, [])
        for item in labelled.queries:
            found = {
                mode: [
                    ((str(h.entry.id), h.entry.title, h.entry.kind), h.score)
                    for h in store.search(item.query, project=scope(labelled), k=50, mode=mode)  # type: ignore[arg-type]
                ]
                for mode in ("vector", "text")
            }
            rows.append((item.targets, found["vector"], found["text"]))
    rules = fusion_rules()
    rules["vector alone"] = lambda v, t: v
    rules["BM25 alone"] = lambda v, t: t
    ranks = {
        name: {
            set_name: [
                first_relevant_rank([key[1] for key, _ in rule(v, t)[:10]], targets)
                for targets, v, t in rows
            ]
            for set_name, rows in lists.items()
        }
        for name, rule in rules.items()
    }

    def pooled(name: str, names: Sequence[str]) -> tuple[float, float]:
        m = metrics_from_ranks(name, [r for n in names for r in ranks[name][n]])
        return m.recall_at_10, m.mrr

    names = list(lists)
    out = ["  rule: recall@10/MRR@10 per set ... pooled"]
    for name in sorted(rules, key=lambda n: -sum(pooled(n, names))):
        cells = " ".join(
            f"{n} {pooled(name, [n])[0]:.3f}/{pooled(name, [n])[1]:.3f}" for n in names
        )
        r10, mrr = pooled(name, names)
        out.append(f"  {name:>20}: {cells}  pooled {r10:.3f}/{mrr:.3f}")
    out.append("  leave one set out (rule chosen by pooled recall@10 + MRR on the other sets):")
    candidates = [n for n in rules if "alone" not in n]
    for held in names:
        rest = [n for n in names if n != held]
        best = max(candidates, key=lambda n: sum(pooled(n, rest)))
        r10, mrr = pooled(best, [held])
        out.append(f"  {held:>15}: {best} -> held-out {r10:.3f}/{mrr:.3f}")
    return out
