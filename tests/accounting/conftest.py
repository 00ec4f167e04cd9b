"""Fixtures for the accounting tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestra.accounting import Accounting
from orchestra.store import Database


class FakeClock:
    """A settable UTC clock."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 18, 12, 0, tzinfo=UTC))


@pytest.fixture
def accounting(database: Database, clock: FakeClock, tmp_path: Path) -> Iterator[Accounting]:
    acc = Accounting(database, clock=clock, journal_dir=tmp_path / "journal", pepper=b"test-pepper")
    yield acc
    acc.close()
