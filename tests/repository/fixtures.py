"""Fixture repositories and virtualenvs, built inside the tests with no network.

A virtualenv gets pytest (and coverage.py) by a ``.pth`` file naming a folder that links
them and their dependencies from Orchestra's own environment (and nothing else: not
Orchestra, not Hypothesis). Packages are installed into it by ``pip install --no-index`` from wheels
built here by hand, so the install is pip's own, editable installs included.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestra.engine.agents import RosterAgents
from orchestra.repository import (
    GateResult,
    TestEnvironment,
    detect_environment,
    green_gate,
    preflight,
    red_gate,
)
from orchestra.repository.preflight import Baseline
from orchestra.roster import BUILTIN_AGENTS_DIR
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits

PYTEST_DISTRIBUTIONS = ("pytest", "pluggy", "iniconfig", "packaging", "pygments")


def site_linking_pytest(dest: Path, *, with_coverage: bool = False) -> Path:
    """A folder of links to pytest and its dependencies (and coverage.py if asked)."""
    dest.mkdir(parents=True, exist_ok=True)
    site = Path(sysconfig.get_paths()["purelib"])
    for name in (*PYTEST_DISTRIBUTIONS, *(("coverage",) if with_coverage else ())):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            if top.endswith((".dist-info", ".pth")) or top.startswith(("..", "__")):
                continue
            source = site / top
            if source.exists() and not (dest / top).exists():
                (dest / top).symlink_to(source)
    return dest


def make_venv(path: Path, *, with_pytest: Path | None) -> Path:
    """A virtualenv at ``path`` (no pip); pytest importable when ``with_pytest`` is given."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    if with_pytest is not None:
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        Path(purelib, "zz_pytest_only.pth").write_text(str(with_pytest) + "\n")
    return python


def build_wheel(dest: Path, name: str, files: dict[str, str]) -> Path:
    """A wheel ``name-0.1-py3-none-any.whl`` holding ``files`` (path -> text)."""
    dest.mkdir(parents=True, exist_ok=True)
    info = f"{name}-0.1.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n"
    contents[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: orchestra-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for rel, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{rel},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = dest / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for rel, text in contents.items():
            archive.writestr(rel, text)
    return wheel


def pip_install(python: Path, wheel: Path) -> None:
    """``pip install --no-index --no-deps`` of a local wheel into ``python``'s environment."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(repo),
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@localhost",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def commit_files(repo: Path, files: dict[str, str | None], message: str) -> str:
    """Write (or delete, for ``None``) ``files`` in ``repo`` and commit; return the commit."""
    for rel, text in files.items():
        target = repo / rel
        if text is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


SRC_LAYOUT = {
    ".gitignore": ".venv/\n",
    "pyproject.toml": '[project]\nname = "mypkg"\nversion = "0.1"\n',
    "src/mypkg/__init__.py": "",
    "src/mypkg/core.py": "def double(x):\n    return 2 * x\n",
    "tests/__init__.py": "",
    "tests/test_core.py": (
        "import shinydep\n\nfrom mypkg.core import double\n\n\n"
        "def test_double():\n    assert double(shinydep.TWO) == 4\n"
    ),
}


def src_layout_repo(path: Path) -> Path:
    """A ``src/`` layout whose tests import ``shinydep``, which only its own venv holds."""
    return create_repository(path, SRC_LAYOUT, "mypkg")


FLAT_LAYOUT = {
    ".gitignore": ".venv/\n",
    "calc.py": "def add(a, b):\n    return a + b\n",
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}


def flat_repo(path: Path) -> Path:
    """A flat layout: a module at the root, tests under ``tests/`` with no ``__init__``."""
    return create_repository(path, FLAT_LAYOUT, "calc")


PIPELINE_AGENTS = (
    "chief-architect",
    "test-writer",
    "python-developer",
    "security-auditor",
    "code-reviewer",
    "readme-writer",
    "qa-lead",
)


def load_pipeline_agents(folder: Path) -> RosterAgents:
    """The built-in agents the test-first pipeline uses, copied to ``folder`` and loaded."""
    folder.mkdir()
    for name in PIPELINE_AGENTS:
        shutil.copy(BUILTIN_AGENTS_DIR / f"{name}.md", folder / f"{name}.md")
    return RosterAgents.load(folder)


def preflight_in(
    tmp_path: Path, repo: Path, limits: CommandLimits
) -> tuple[TestEnvironment, dict[str, Any], Baseline]:
    """The repository's detected environment, the gate keyword arguments (state and report
    folders under ``tmp_path``, ``limits``) and its preflight baseline."""
    env = detect_environment(repo, environ={})
    kwargs: dict[str, Any] = {
        "home": tmp_path / "h",
        "limits": limits,
        "report_dir": tmp_path / "rep",
    }
    return env, kwargs, preflight(env, repo, **kwargs)


@dataclass(frozen=True)
class Gates:
    """A repository after preflight at its current ``HEAD`` (the base commit), with the
    gates' arguments bound: ``red(planned)`` judges the working tree's new tests against
    the baseline, ``green()`` the whole suite."""

    env: TestEnvironment
    repo: Path
    base: str
    baseline: Baseline
    kwargs: dict[str, Any]

    def red(self, planned_files: list[str]) -> GateResult:
        """The red gate on the working tree, ``planned_files`` being the plan's files."""
        return red_gate(
            self.env,
            self.repo,
            base_commit=self.base,
            base_ids=self.baseline.test_ids,
            planned_files=planned_files,
            **self.kwargs,
        )

    def green(self) -> GateResult:
        """The green gate on the working tree."""
        return green_gate(self.env, self.repo, **self.kwargs)


def gates_in(tmp_path: Path, repo: Path, limits: CommandLimits) -> Gates:
    """:func:`preflight_in` at the repository's ``HEAD``, as :class:`Gates`."""
    env, kwargs, baseline = preflight_in(tmp_path, repo, limits)
    base = git(repo, "rev-parse", "HEAD").strip()
    return Gates(env, repo, base, baseline, kwargs)
