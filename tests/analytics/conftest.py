from __future__ import annotations

import pytest

from orchestra.store import Database
from tests.analytics.fixtures import organisation


@pytest.fixture
def db(database: Database) -> Database:
    """A migrated database (SQLite, and PostgreSQL where configured) with the organisation
    of the fixtures stored."""
    organisation(database)
    return database
