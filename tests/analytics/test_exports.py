"""`orchestra.analytics`'s public surface is pinned: see tests/exports.py."""

from __future__ import annotations

import orchestra.analytics
from tests.exports import assert_exports_pinned


def test_all_lists_exactly_the_public_names() -> None:
    assert_exports_pinned(orchestra.analytics)


def test_the_docs_table_lists_every_definition() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "insight.md").read_text("utf-8")
    for d in orchestra.analytics.DEFINITIONS:
        row = f"| `{d.name}` | {d.unit} | {d.formula} | {'; '.join(d.inputs)} | {d.unknown_when} |"
        assert row in page, d.name
