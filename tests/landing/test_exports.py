"""`orchestra.landing`'s public surface is pinned: see tests/exports.py."""

from __future__ import annotations

import orchestra.landing
from tests.exports import assert_exports_pinned


def test_all_lists_exactly_the_public_names() -> None:
    assert_exports_pinned(orchestra.landing)
