from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestra.store import Database, open_database
from tests.analytics.fixtures import organisation


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'insight.db'}")
    organisation(database)
    yield database
    database.dispose()
