"""The benchmark's labelled sets: real targets, enough questions, paraphrases not copies."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from orchestra.knowledge.chunking import chunk_file
from orchestra.knowledge.evaluation import LabelledSet, load_set, target_key

SETS = sorted((Path(__file__).parents[2] / "bench" / "knowledge" / "sets").glob("*.json"))
WORD = re.compile(r"[a-z]+")
STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "one",
        "or",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "which",
        "while",
        "with",
        "without",
    ]
)


def package_chunks(package: str) -> dict[str, str]:
    """Target key -> the chunk's text, for every chunk of the installed package's source."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    out: dict[str, str] = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if "tests" in rel.parts:
            continue
        for chunk in chunk_file(rel.as_posix(), path.read_text(encoding="utf-8")):
            out.setdefault(target_key(chunk.title), chunk.text)
    return out


def docstring_of(source: str) -> str:
    """The docstring of the first definition in ``source`` (a chunk), or ''."""
    try:
        tree = ast.parse(source if source[:1] not in " \t" else "if 1:\n" + source)
    except SyntaxError:
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return ast.get_docstring(node) or ""
    return ""


@pytest.fixture(scope="module", params=SETS, ids=[p.stem for p in SETS])
def labelled(request: pytest.FixtureRequest) -> LabelledSet:
    return load_set(request.param)


def test_there_are_three_real_repositories_and_a_decisions_set() -> None:
    sets = [load_set(p) for p in SETS]
    assert len([s for s in sets if s.package]) >= 3
    assert any(s.entries and not s.package for s in sets)
    for s in sets:
        assert s.package is None or (s.distribution and "==" in s.distribution)


def test_each_set_has_enough_questions(labelled: LabelledSet) -> None:
    assert len(labelled.queries) >= 25
    assert len({q.query for q in labelled.queries}) == len(labelled.queries)


def test_every_target_exists_and_no_question_copies_its_docstring(
    labelled: LabelledSet,
) -> None:
    if labelled.package:
        texts = package_chunks(labelled.package)
    else:
        texts = {e.title: e.text for e in labelled.entries}
        assert {e.kind for e in labelled.entries} <= {"decision", "convention"}
    for item in labelled.queries:
        for target in item.targets:
            key = target_key(target)
            assert key in texts, f"{labelled.name}: {target} is not in the corpus"
            described = docstring_of(texts[key]) if labelled.package else texts[key]
            summary = described.strip().split("\n\n")[0].lower()
            words = set(WORD.findall(item.query.lower())) - STOP
            shared = words & set(WORD.findall(summary))
            # A paraphrase: the question is not a sentence of the target's description, and
            # at most half of its content words come from the description's first paragraph.
            assert item.query.lower() not in summary
            assert len(shared) <= len(words) / 2, (item.query, target, sorted(shared))
