"""Detecting how a repository's tests run, and the settings that override detection."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestra.config import OrchestraConfig
from orchestra.repository import (
    detect_environment,
    normalise_remote,
    resolve_environment,
    rewrite_pythonpath,
)
from orchestra.testing.scripted import create_repository
from tests.repository.fixtures import flat_repo, git, make_venv


def _no_tools(name: str) -> str | None:
    return None


def _config(overrides: dict[str, object], **engine: object) -> OrchestraConfig:
    data: dict[str, object] = {"repositories": {"overrides": overrides}}
    if engine:
        data["engine"] = engine
    return OrchestraConfig.model_validate(data)


def test_flat_layout_without_environment_uses_orchestras_interpreter_and_says_so(
    tmp_path: Path,
) -> None:
    repo = flat_repo(tmp_path / "flat")
    env = detect_environment(repo, environ={}, which=_no_tools)
    assert env.kind == "system"
    assert env.command[:3] == (sys.executable, "-m", "pytest")
    assert env.python_path == (".",)
    assert any("virtualenv" in note for note in env.notes)


def test_repository_venv_is_used_with_src_first_on_the_import_path(tmp_path: Path) -> None:
    repo = create_repository(tmp_path / "r", {"src/pkg/__init__.py": "", "pyproject.toml": ""})
    make_venv(repo / ".venv", with_pytest=None)
    env = detect_environment(repo, environ={}, which=_no_tools)
    assert env.kind == "venv"
    assert env.interpreter == str(repo.resolve() / ".venv" / "bin" / "python")
    assert env.command[0] == env.interpreter
    assert env.python_path == ("src", ".")
    assert env.virtual_env == str(repo.resolve() / ".venv")


def test_uv_lock_with_its_environment_runs_that_environment_directly(tmp_path: Path) -> None:
    repo = create_repository(tmp_path / "r", {"uv.lock": "", "pyproject.toml": ""})
    make_venv(repo / ".venv", with_pytest=None)
    env = detect_environment(repo, environ={}, which=_no_tools)
    assert env.kind == "uv"
    assert env.interpreter is not None and env.interpreter.endswith(".venv/bin/python")


def test_uv_lock_without_environment_runs_uv_and_says_to_sync(tmp_path: Path) -> None:
    repo = create_repository(tmp_path / "r", {"uv.lock": "", "pyproject.toml": ""})
    env = detect_environment(repo, environ={}, which=lambda name: "/usr/bin/" + name)
    assert env.command[:3] == ("uv", "run", "--frozen")
    assert env.env["UV_PROJECT_ENVIRONMENT"] == str(repo.resolve() / ".venv")
    assert any("uv sync" in note for note in env.notes)


def test_poetry_environment_is_found_through_poetry(tmp_path: Path) -> None:
    repo = create_repository(tmp_path / "r", {"poetry.lock": "", "pyproject.toml": ""})
    venv = tmp_path / "cache" / "r-py3.11"
    make_venv(venv, with_pytest=None)
    asked: list[list[str]] = []

    def probe(argv: list[str], cwd: Path) -> str | None:
        asked.append(argv)
        return str(venv)

    env = detect_environment(repo, environ={}, which=lambda n: "/x/" + n, probe=probe)
    assert asked == [["poetry", "env", "info", "-p"]]
    assert env.kind == "poetry"
    assert env.virtual_env == str(venv)


def test_poetry_missing_falls_back_to_poetry_run_with_advice(tmp_path: Path) -> None:
    repo = create_repository(tmp_path / "r", {"poetry.lock": "", "pyproject.toml": ""})
    env = detect_environment(repo, environ={}, which=_no_tools)
    assert env.command[:2] == ("poetry", "run")
    assert "not on PATH" in env.notes[0]


def test_hatch_and_tox_environments(tmp_path: Path) -> None:
    hatch = create_repository(
        tmp_path / "h", {"pyproject.toml": "[tool.hatch.envs.default]\ndependencies = []\n"}
    )
    venv = tmp_path / "hatch-env"
    make_venv(venv, with_pytest=None)
    env = detect_environment(
        hatch, environ={}, which=lambda n: "/x/" + n, probe=lambda argv, cwd: str(venv)
    )
    assert (env.kind, env.virtual_env) == ("hatch", str(venv))

    tox = create_repository(tmp_path / "t", {"tox.ini": "[tox]\n"})
    make_venv(tox / ".tox" / "py311", with_pytest=None)
    env = detect_environment(tox, environ={}, which=_no_tools)
    assert env.kind == "tox"
    assert env.virtual_env == str(tox.resolve() / ".tox" / "py311")


def test_activated_virtualenv_is_used_when_the_repository_has_none(tmp_path: Path) -> None:
    repo = flat_repo(tmp_path / "flat")
    venv = tmp_path / "active"
    make_venv(venv, with_pytest=None)
    env = detect_environment(repo, environ={"VIRTUAL_ENV": str(venv)}, which=_no_tools)
    assert env.virtual_env == str(venv)
    assert "VIRTUAL_ENV" in env.source


@pytest.mark.parametrize(
    ("files", "kind", "command", "runner"),
    [
        ({"package.json": {"scripts": {"test": "vitest run"}}}, "npm", ("npm", "test"), "vitest"),
        (
            {"package.json": {"scripts": {"test": "jest"}}, "pnpm-lock.yaml": ""},
            "pnpm",
            ("pnpm", "test"),
            "jest",
        ),
        (
            {"package.json": {"scripts": {"test": "node --test"}}, "yarn.lock": ""},
            "yarn",
            ("yarn", "test"),
            "node",
        ),
        ({"go.mod": "module example.com/m\n"}, "go", ("go", "test", "./..."), "go"),
        ({"Cargo.toml": "[package]\n"}, "cargo", ("cargo", "test", "--offline"), "cargo"),
        ({"pom.xml": "<project/>"}, "maven", ("mvn", "-q", "-o", "test"), "maven"),
        ({"build.gradle": ""}, "gradle", ("gradle", "test", "--offline"), "gradle"),
    ],
)
def test_other_languages(
    tmp_path: Path, files: dict[str, object], kind: str, command: tuple[str, ...], runner: str
) -> None:
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in files.items()}
    repo = create_repository(tmp_path / "r", text)
    env = detect_environment(repo, environ={}, which=_no_tools)
    assert (env.kind, env.command, env.runner) == (kind, command, runner)


def test_npm_default_test_script_is_flagged(tmp_path: Path) -> None:
    script = 'echo "Error: no test specified" && exit 1'
    repo = create_repository(
        tmp_path / "r", {"package.json": json.dumps({"scripts": {"test": script}})}
    )
    assert "no `test` script" in detect_environment(repo, environ={}).notes[0]


def test_setting_by_path_wins_and_does_not_leak_to_a_same_named_folder(tmp_path: Path) -> None:
    one = flat_repo(tmp_path / "a" / "app")
    two = flat_repo(tmp_path / "b" / "app")
    config = _config({str(one): {"test_command": ["make", "test"]}})
    assert resolve_environment(one, config, environ={}).command == ("make", "test")
    assert resolve_environment(one, config, environ={}).explicit
    assert resolve_environment(two, config, environ={}).command != ("make", "test")


def test_setting_by_remote_url_matches_every_spelling_of_the_remote(tmp_path: Path) -> None:
    repo = flat_repo(tmp_path / "app")
    git(repo, "remote", "add", "origin", "git@github.com:Acme/app.git")
    config = _config({"https://github.com/Acme/app": {"test_command": ["tox"]}})
    assert resolve_environment(repo, config, environ={}).command == ("tox",)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/app.git",
        "git@github.com:acme/app.git",
        "ssh://git@GitHub.com:22/acme/app",
        "github.com/acme/app/",
        "https://user@github.com/acme/app",
    ],
)
def test_remote_spellings_normalise_to_one_key(url: str) -> None:
    assert normalise_remote(url) == "github.com/acme/app"


def test_folder_name_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="never by folder name"):
        _config({"app": {"test_command": ["pytest"]}})


def test_credential_looking_pass_through_is_refused() -> None:
    with pytest.raises(ValidationError, match="credential"):
        OrchestraConfig.model_validate({"repositories": {"pass_env": ["GITHUB_TOKEN"]}})


def test_explicit_engine_test_command_wins_but_its_default_does_not(tmp_path: Path) -> None:
    repo = create_repository(tmp_path / "r", {"pyproject.toml": ""})
    make_venv(repo / ".venv", with_pytest=None)
    assert resolve_environment(repo, OrchestraConfig(), environ={}).kind == "venv"
    assert not resolve_environment(repo, OrchestraConfig(), environ={}).explicit
    config = OrchestraConfig.model_validate({"engine": {"test_command": ["pytest", "-x"]}})
    env = resolve_environment(repo, config, environ={})
    assert env.command == ("pytest", "-x") and env.explicit


def test_configured_venv_and_missing_venv(tmp_path: Path) -> None:
    repo = flat_repo(tmp_path / "flat")
    make_venv(repo / "envs" / "dev", with_pytest=None)
    config = _config({str(repo): {"venv": "envs/dev", "python_path": ["lib"]}})
    env = resolve_environment(repo, config, environ={})
    assert env.virtual_env == str(repo.resolve() / "envs" / "dev")
    assert env.python_path == ("lib",)
    broken = _config({str(repo): {"venv": "nope"}})
    with pytest.raises(Exception, match="no Python interpreter") as info:
        resolve_environment(repo, broken, environ={})
    assert "python -m venv" in (getattr(info.value, "hint", "") or "")


def test_sandbox_env_puts_the_worktree_first_and_keeps_the_users_pythonpath(
    tmp_path: Path,
) -> None:
    repo = create_repository(tmp_path / "r", {"src/pkg/__init__.py": "", "pyproject.toml": ""})
    make_venv(repo / ".venv", with_pytest=None)
    env = detect_environment(repo, environ={}, which=_no_tools)
    worktree = tmp_path / "wt"
    user = os.pathsep.join([str(repo / "src"), "/opt/shared"])
    out = env.sandbox_env(worktree, {"PYTHONPATH": user})
    assert out["PYTHONPATH"].split(os.pathsep) == [
        str(worktree / "src"),
        str(worktree),
        "/opt/shared",
    ]
    path = out["PATH"].split(os.pathsep)
    assert path[0] == str(repo.resolve() / ".venv" / "bin")
    assert str(Path(sys.executable).parent) not in path
    assert out["VIRTUAL_ENV"] == str(repo.resolve() / ".venv")


def test_rewrite_pythonpath_keeps_outside_entries_in_order(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "lib").mkdir(parents=True)
    value = os.pathsep.join(["/a", str(repo / "lib"), "", str(repo)])
    assert rewrite_pythonpath(value, repo, tmp_path / "wt") == [
        "/a",
        str(tmp_path / "wt" / "lib"),
        str(tmp_path / "wt"),
    ]


def test_hatch_as_build_backend_only_is_not_a_hatch_environment(tmp_path: Path) -> None:
    repo = create_repository(
        tmp_path / "r",
        {"pyproject.toml": '[tool.hatch.build.targets.wheel]\npackages = ["src/x"]\n'},
    )
    assert detect_environment(repo, environ={}, which=_no_tools).kind == "system"
