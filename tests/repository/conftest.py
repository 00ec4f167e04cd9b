from __future__ import annotations

from pathlib import Path

import pytest

from tests.repository.fixtures import site_linking_pytest


@pytest.fixture(scope="session")
def site_with_pytest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Links to pytest and its dependencies only, for fixture virtualenvs."""
    return site_linking_pytest(tmp_path_factory.mktemp("pytest-site") / "site")
