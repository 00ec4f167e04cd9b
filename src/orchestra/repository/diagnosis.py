"""The first real error of a test command's output, and the fix to suggest.

A broken environment prints pages of traceback; what the user needs is one line
(``No module named pytest``, ``ModuleNotFoundError: No module named 'mypkg'``) and what
to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from orchestra.repository.environment import TestEnvironment
from orchestra.repository.manifests import read_package_json

_NO_PYTEST = re.compile(r"No module named '?pytest'?$|pytest: (?:command )?not found")
_NO_RUNNER = re.compile(r"^\S*python[\d.]*: No module named '?(?P<name>[\w.]+)'?$")
_NO_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '(?P<name>[\w.]+)'")
_NOT_FOUND = re.compile(r"command not found: (?P<name>\S+)|(?P<sh>\S+): (?:command )?not found")
_ERROR_LINE = re.compile(
    r"^(?:E\s+)?(?P<line>(?:[A-Za-z_][\w.]*(?:Error|Exception)|ERROR|error|FAIL)\b:?.*)$"
)
_COLLECTING = re.compile(r"^_+ ERROR collecting \S+ _+$")
_SECTION = re.compile(r"^(?:_{3,}|={3,}).*")
_SKIP = ("Traceback", "During handling", "The above exception")


@dataclass(frozen=True)
class Diagnosis:
    """The first real error line and the fix to suggest."""

    first_error: str
    hint: str


def first_error_line(output: str) -> str:
    """The line that says what went wrong, without traceback framing."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    for pattern in (_NO_PYTEST, _NO_RUNNER, _NO_MODULE, _NOT_FOUND):
        for line in lines:
            if pattern.search(line.strip()):
                return _clean(line)
    collecting = _collection_error(lines)
    if collecting:
        return _clean(collecting)
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(_SKIP) or line.startswith((" ", "\t")):
            continue
        if _ERROR_LINE.match(stripped):
            return _clean(stripped)
    return _clean(lines[-1]) if lines else ""


def _collection_error(lines: list[str]) -> str:
    """The cause in pytest's first ``ERROR collecting`` section: its exception line
    (``E   ...``), else its first line (a usage error such as duplicate parametrize ids),
    rather than the short summary's ``ERROR tests/x.py::Class``."""
    for at, line in enumerate(lines):
        if not _COLLECTING.match(line.strip()):
            continue
        block: list[str] = []
        for nxt in lines[at + 1 :]:
            if _SECTION.match(nxt.strip()):
                break
            block.append(nxt)
        raised = [b for b in block if b.startswith("E ")]
        if raised:
            return raised[-1]
        return block[0] if block else ""
    return ""


def _clean(line: str) -> str:
    text = line.strip()
    if text.startswith("E "):
        text = text[1:].strip()
    return text[:300]


def _own_package(repo: Path, name: str) -> bool:
    top = name.split(".")[0]
    for root in (repo, repo / "src"):
        if (root / top).is_dir() or (root / f"{top}.py").is_file():
            return True
    return False


def install_hint(env: TestEnvironment, what: str) -> str:
    """How to install ``what`` into ``env``, the way its tool does it (uv and Poetry
    environments have no pip of their own)."""
    if env.kind == "uv":
        return (
            f"add {what} to the project's dev dependencies: `uv add --dev {what}` in the "
            "repository (or edit pyproject.toml and run `uv sync`)"
        )
    if env.kind == "poetry":
        return (
            f"add {what} to the project's dependencies (poetry add --group dev {what}) "
            "and run `poetry install`"
        )
    if env.interpreter and env.kind != "system":
        return (
            f"install it into the repository's environment: {env.interpreter} -m pip install {what}"
        )
    return (
        f"tests run with Orchestra's own interpreter, which lacks {what}: create a virtualenv "
        f"in the repository (python -m venv .venv; .venv/bin/pip install -e . {what}) so "
        "Orchestra uses it, or set repositories.overrides.<repository>.venv"
    )


_INSTALL = {
    "npm": "npm install",
    "pnpm": "pnpm install --frozen-lockfile",
    "yarn": "yarn install --frozen-lockfile",
}


def _missing_node_modules(env: TestEnvironment) -> str | None:
    """The install command to suggest when the checkout's JS dependencies are missing."""
    if env.language != "javascript" or (env.repository / "node_modules").is_dir():
        return None
    package = read_package_json(env.repository) or {}
    if not (package.get("dependencies") or package.get("devDependencies")):
        return None
    if env.kind == "npm" and (env.repository / "package-lock.json").is_file():
        return "npm ci"
    return _INSTALL.get(env.kind, "npm install")


def diagnose(output: str, env: TestEnvironment, *, timed_out: bool = False) -> Diagnosis:
    """What went wrong in a test command's ``output``, and how to fix it."""
    if timed_out:
        return Diagnosis(
            "the test command did not finish in time",
            "raise engine.command_timeout_s, or make the suite faster",
        )
    line = first_error_line(output)
    install = _missing_node_modules(env)
    if install is not None:
        return Diagnosis(
            line or "the test command failed",
            f"the repository's dependencies are not installed (it has no node_modules): run "
            f"`{install}` in {env.repository}; a run's worktree uses the checkout's",
        )
    if _NO_PYTEST.search(line):
        return Diagnosis(line, install_hint(env, "pytest"))
    if match := _NO_RUNNER.search(line):
        name = match.group("name")
        return Diagnosis(
            line,
            install_hint(env, name) + "; or set the command your developers run: "
            "repositories.overrides.<repository>.test_command",
        )
    if match := _NO_MODULE.search(line):
        name = match.group("name")
        if _own_package(env.repository, name):
            roots = ", ".join(env.python_path) or "."
            return Diagnosis(
                line,
                f"{name} is the repository's own code but does not import from the worktree "
                f"(import path: {roots}); set repositories.overrides.<repository>.python_path "
                "to the folder that holds it",
            )
        return Diagnosis(line, install_hint(env, name.split(".")[0]))
    if match := _NOT_FOUND.search(line):
        name = match.group("name") or match.group("sh")
        pinned = str((read_package_json(env.repository) or {}).get("packageManager", ""))
        if name in {"pnpm", "yarn"} and pinned.startswith(f"{name}@"):
            name = f"{name} ({pinned.split('+')[0]}, the version package.json pins)"
        return Diagnosis(
            line,
            f"install {name}, or set repositories.overrides.<repository>.test_command to the "
            "command your developers run",
        )
    return Diagnosis(
        line or "the test command failed without output",
        f"run the test command in the repository to see the whole output: {' '.join(env.command)}",
    )
