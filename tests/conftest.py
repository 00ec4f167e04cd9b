"""Fixtures shared by the whole suite."""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

pytest.register_assert_rewrite("tests.exports")

from orchestra.store import Database, normalise_url, open_database  # noqa: E402
from orchestra.tools import sandbox  # noqa: E402

POSTGRES_ENV = "ORCHESTRA_TEST_DATABASE_URL"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Leave the modules and objects loaded by collection out of every later garbage
    collection: they live for the whole session, and walking them again in each full
    collection made tests that collect (and the collector's own runs) slow late in the
    suite."""
    gc.collect()
    gc.freeze()


# Test files whose tests run the whole pipeline (tens of seconds each), then files of
# tests that take seconds each without being marked ``slow`` (fixture repositories run end
# to end, servers started as processes, the retrieval-quality corpus). They run first (the
# pipeline runs, then the rest with the ``slow`` tests): see pytest_collection_modifyitems.
PIPELINE_RUN_FILES = frozenset(
    {
        "tests/engine/test_serve_resume.py",
        "tests/engine/test_postgres.py",
        "tests/engine/test_pipeline.py",
        "tests/engine/test_resume.py",
        "tests/cli/test_engine.py",
        "tests/testing/test_replay.py",
        "tests/pipelines/test_repository_runs.py",
    }
)
LONG_RUNNING_FILES = frozenset(
    {
        "tests/cli/test_doctor.py",
        "tests/cli/test_serve.py",
        "tests/repository/test_preflight.py",
        "tests/repository/test_gate.py",
        "tests/knowledge/test_retrieval_quality.py",
        "tests/knowledge/test_claude_code_hooks.py",
        "tests/knowledge/test_hooks.py",
        "tests/experiments/test_durable.py",
        "tests/experiments/test_acceptance_languages.py",
    }
)


def _expected_length(item: pytest.Item) -> int:
    """0 for a complete pipeline run, 1 for another long test, 2 for the rest."""
    path = item.nodeid.split("::", 1)[0]
    if path in PIPELINE_RUN_FILES:
        return 0
    if item.get_closest_marker("slow") is not None or path in LONG_RUNNING_FILES:
        return 1
    return 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first, each group in its collected order.

    With ``make unit``'s ``--dist load --maxschedchunk 1`` each worker takes the next test
    when it is done, so the long tests spread over the workers from the start and the
    short ones fill in at the end, instead of one long test running alone at the end.
    """
    items.sort(key=_expected_length)


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the developer's real state folder or configuration."""
    home = tmp_path_factory.mktemp("orchestra-home")
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("ORCHESTRA__") or name in {"ORCHESTRA_CONFIG", "ORCHESTRA_DATABASE_URL"}:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _child_pytest_without_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test runs of sample repositories load none of this environment's pytest plugins.

    With no virtualenv of its own, a repository's tests run in Orchestra's interpreter,
    here the suite's virtualenv, whose plugins (Hypothesis, xdist, anyio, timeout and what
    else the test extra brings) pytest would import at every start: most of each pipeline
    run's time. The repositories the tests build use none of them, so their runs start
    without (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``, passed through the sandbox); the commands
    run and everything the engine does with their results are unchanged.
    """
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setattr(
        sandbox, "PASSED_THROUGH", (*sandbox.PASSED_THROUGH, "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    )


@contextmanager
def scratch_postgres_database(url: str, template: str | None = None) -> Iterator[str]:
    """Create a throw-away database next to ``url`` and yield its URL; drop it afterwards.

    Each test gets its own database, so tests (and developers) running at the same time
    never see each other's rows. With ``template``, the new database is a copy of that one
    (``CREATE DATABASE ... TEMPLATE``).
    """
    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    name = f"orchestra_t_{uuid.uuid4().hex[:16]}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy_of}'))
    try:
        yield make_url(normalise_url(url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class MigratedTemplates:
    """One migrated database per backend and test process, made on first use, that the
    ``database`` fixture copies instead of migrating an empty database for every test."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._sqlite: Path | None = None
        self._postgres: ExitStack | None = None
        self._postgres_name = ""

    def sqlite_file(self) -> Path:
        """A SQLite file migrated to the head revision (closed: copy it)."""
        if self._sqlite is None:
            path = self._folder / "migrated.db"
            open_database(f"sqlite:///{path}").dispose()
            self._sqlite = path
        return self._sqlite

    def postgres_database(self, url: str) -> str:
        """The name of a PostgreSQL database next to ``url``, migrated to the head revision
        and with no open connection (so it can be a template)."""
        if self._postgres is None:
            stack = ExitStack()
            scratch = stack.enter_context(scratch_postgres_database(url))
            open_database(scratch).dispose()
            self._postgres, self._postgres_name = stack, str(make_url(scratch).database)
        return self._postgres_name

    def close(self) -> None:
        """Drop the PostgreSQL template, if one was made."""
        if self._postgres is not None:
            self._postgres.close()


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplates]:
    """This test process's migrated template databases."""
    templates = MigratedTemplates(tmp_path_factory.mktemp("migrated-templates"))
    yield templates
    templates.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file, and PostgreSQL where configured.

    The database is empty, except in a test that also asks for ``database`` (which opens
    and so migrates it before the test begins): there it is a copy of a database migrated
    once per test process, which is what migrating it would make, without the time.

    The PostgreSQL case is skipped, with the reason shown, only when
    ``ORCHESTRA_TEST_DATABASE_URL`` is unset; CI sets it, so there it always runs.
    """
    migrated = (
        request.getfixturevalue("migrated_templates")
        if "database" in request.fixturenames
        else None
    )
    if request.param == "sqlite":
        path = tmp_path / "orchestra.db"
        if migrated is not None:
            shutil.copyfile(migrated.sqlite_file(), path)
        yield f"sqlite:///{path}"
        return
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    template = migrated.postgres_database(url) if migrated is not None else None
    with scratch_postgres_database(url, template) as scratch:
        yield scratch


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """An open, migrated database on each backend."""
    db = open_database(database_url)
    yield db
    db.dispose()
