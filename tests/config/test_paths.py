"""Where the state folder is: ORCHESTRA_HOME, the configuration file's folder, the
nearest existing state folder, the working folder; and nothing is created by asking."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.config.paths import database_file, default_database_url, orchestra_home


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("ORCHESTRA_HOME", raising=False)
    (tmp_path / "repo" / "a" / "b").mkdir(parents=True)
    return tmp_path / "repo"


def test_the_configuration_files_folder_holds_the_state(tree: Path) -> None:
    (tree / "orchestra.yaml").write_text("")
    assert orchestra_home(tree / "a" / "b") == tree / ".orchestra"
    assert default_database_url(tree / "a") == f"sqlite:///{tree / '.orchestra' / 'orchestra.db'}"
    assert not (tree / ".orchestra").exists()  # asking creates nothing


def test_an_explicit_or_environment_configuration_wins_over_the_search(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tree / "orchestra.yaml").write_text("")
    other = tmp_path / "other" / "orchestra.yaml"
    assert orchestra_home(tree / "a", config=other) == other.parent / ".orchestra"
    monkeypatch.setenv("ORCHESTRA_CONFIG", str(other))
    assert orchestra_home(tree / "a") == other.parent / ".orchestra"
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    assert orchestra_home(tree / "a", config=other) == tmp_path / "home"


def test_without_configuration_the_nearest_state_folder_then_the_working_folder(
    tree: Path,
) -> None:
    assert orchestra_home(tree / "a" / "b") == tree / "a" / "b" / ".orchestra"
    (tree / ".orchestra").mkdir()
    assert orchestra_home(tree / "a" / "b") == tree / ".orchestra"
    (tree / ".orchestra").rmdir()
    (tree / ".orchestra").write_text("a file, not a state folder")
    assert orchestra_home(tree / "a") == tree / "a" / ".orchestra"


def test_database_file_names_sqlite_files_only() -> None:
    assert database_file("sqlite:////var/x/orchestra.db") == Path("/var/x/orchestra.db")
    assert database_file("sqlite:///:memory:") is None
    assert database_file("sqlite://") is None
    assert database_file("postgresql://u@h/db") is None
    assert database_file("not a url") is None
