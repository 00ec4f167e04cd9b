"""`orchestra.cli`'s public surface is its console-script entry point: see tests/exports.py."""

from __future__ import annotations

import orchestra.cli
from tests.exports import assert_exports_pinned


def test_all_lists_exactly_the_public_names() -> None:
    assert_exports_pinned(orchestra.cli)
    assert orchestra.cli.__all__ == ["main"]
