"""Configuration section ``repositories``: how each repository's tests run.

Settings are keyed by something that cannot collide: the repository's absolute path
(``~`` allowed) or its remote URL (``github.com/acme/shop``; scheme, user and ``.git``
are ignored). Never the folder's name: two checkouts called ``app`` are two repositories.
An explicit setting always wins over what Orchestra detects.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import Field, field_validator

from orchestra.config.models import StrictModel

EnvironmentKind = Literal[
    "venv",
    "uv",
    "poetry",
    "hatch",
    "tox",
    "nox",
    "npm",
    "pnpm",
    "yarn",
    "go",
    "cargo",
    "maven",
    "gradle",
    "system",
]
ENVIRONMENT_KINDS: tuple[str, ...] = get_args(EnvironmentKind)
"""Every environment kind a repository setting may force."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CREDENTIAL = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)


def _check_names(names: list[str]) -> list[str]:
    for name in names:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
        if _CREDENTIAL.search(name):
            raise ValueError(
                f"{name} looks like a credential; tests run without network and never "
                "receive credentials (set a fixed value under `env` if a test needs one)"
            )
    return names


class RepositorySettings(StrictModel):
    """Explicit settings for one repository; each one set here wins over detection."""

    environment: EnvironmentKind | None = None
    """Force an environment kind instead of detecting it (``venv``, ``uv``, ``npm``, ...)."""
    venv: str | None = None
    """Virtualenv folder to run Python tests in (absolute, or relative to the repository)."""
    test_command: list[str] | None = None
    """The exact command that runs the tests, e.g. ``[".venv/bin/python", "-m", "pytest"]``."""
    tags: list[str] = Field(default_factory=list)
    """Labels policies read (``pci``, ``public`` ...): e.g. a security review must run
    on ``pci`` repositories (see ``docs/policies.md``)."""
    python_path: list[str] | None = None
    """Folders (relative to the repository) put first on ``PYTHONPATH``; default: ``src``
    when it exists, and the repository root."""
    pass_env: list[str] = Field(default_factory=list)
    """Extra variables copied from Orchestra's environment into this repository's commands."""
    env: dict[str, str] = Field(default_factory=dict)
    """Variables set to fixed values in this repository's commands."""
    keep_pythonpath: bool = True
    """Keep the user's own ``PYTHONPATH`` (after the worktree's folders, with entries inside
    the repository pointed at the worktree)."""
    preexisting_failures: bool = False
    """Allow tests that already fail at the base commit: they are recorded and left out of
    the gates. Off by default: a failing baseline stops the run in preflight."""
    coverage_command: list[str] | None = None
    """The command that measures coverage; default: derived from the test command."""

    @field_validator("pass_env")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return _check_names(value)


class RepositoriesSection(StrictModel):
    """How repositories' tests run: variables passed through and per-repository settings."""

    pass_env: list[str] = Field(default_factory=list)
    """Variables copied from Orchestra's environment into every repository command, on top
    of the sandbox's fixed list (see ``docs/repositories.md``)."""
    overrides: dict[str, RepositorySettings] = Field(default_factory=dict)
    """Settings per repository, keyed by absolute path or remote URL."""

    @field_validator("pass_env")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return _check_names(value)

    @field_validator("overrides")
    @classmethod
    def _keys(cls, value: dict[str, RepositorySettings]) -> dict[str, RepositorySettings]:
        for key in value:
            if not (key.startswith(("/", "~")) or "/" in key or ":" in key):
                raise ValueError(
                    f"{key!r} is not a path or a remote URL: key repositories by their "
                    "absolute path (/home/me/src/app) or remote (github.com/acme/app), "
                    "never by folder name, which can collide"
                )
        return value
