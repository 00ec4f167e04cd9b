from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.dashboard.seed import Seeded, seeded_app


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One seeded application for a module's read-only tests."""
    yield from seeded_app(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A seeded application of its own (for tests that change alerts)."""
    yield from seeded_app(tmp_path_factory.mktemp("dashboard-fresh"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
