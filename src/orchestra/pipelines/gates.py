"""Where the test-first pipeline's test files live.

The gates themselves judge test *cases* from the runner's structured report and live in
:mod:`orchestra.repository` (environment, preflight, :func:`~orchestra.repository.red_gate`,
:func:`~orchestra.repository.green_gate`).
"""

from __future__ import annotations

import fnmatch

TEST_PATTERNS = ("tests/*", "test/*", "*/tests/*", "test_*.py", "*_test.py", "*/test_*.py")


def is_test_path(path: str) -> bool:
    """Whether ``path`` is a test file or lives in a test folder."""
    return any(fnmatch.fnmatch(path, pattern) for pattern in TEST_PATTERNS)
