"""The pipelines' public surfaces are exactly their ``__all__``, and other packages reach
the engine and the pipelines only through those surfaces."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pytest

import orchestra
import orchestra.engine
import orchestra.pipelines
import orchestra.pipelines.test_first
from tests.engine.test_exported_members import public_names

SRC = Path(orchestra.__file__).parent


@pytest.mark.parametrize(
    "package", [orchestra.pipelines, orchestra.pipelines.test_first], ids=lambda p: p.__name__
)
def test_all_imports_are_exported(package: ModuleType) -> None:
    assert sorted(package.__all__) == public_names(package)


SURFACES = {"orchestra.engine": orchestra.engine, "orchestra.pipelines": orchestra.pipelines}


def _outside_imports(surface: str) -> list[tuple[str, int, str, str]]:
    """(file, line, module, name) of every import of ``surface``'s names from a module
    outside that package."""
    package_dir = SRC / surface.removeprefix("orchestra.").replace(".", "/")
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if package_dir in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
                if module == surface or module.startswith(surface + "."):
                    for alias in node.names:
                        found.append((str(path.relative_to(SRC)), node.lineno, module, alias.name))
    return found


# Internals other layers use on purpose, each named with why; nothing else may reach past
# the package's __all__.
ALLOWED_DEEP = {
    # the composition root serves the gateway next to the engine
    ("orchestra.engine.gateway_link", "LocalGateway"),
    ("orchestra.engine.gateway_link", "serve_on_loopback"),
    ("orchestra.engine.gateway_link", "RunAccounting"),
    # ... and gives each run its key: in that gateway, or from a shared one
    ("orchestra.engine.gateway_link", "LocalRunKeys"),
    ("orchestra.engine.gateway_link", "GatewayRunKeys"),
    ("orchestra.engine.gateway_link", "run_developer"),
    # ... and the API tells who a run's key belongs to (resume by its owner)
    ("orchestra.engine.gateway_link", "run_owner"),
}


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_other_packages_import_only_the_public_surface(surface: str) -> None:
    exported = set(SURFACES[surface].__all__)
    wrong = [
        f"{path}:{line} from {module} import {name}"
        for path, line, module, name in _outside_imports(surface)
        if (module, name) not in ALLOWED_DEEP and (module != surface or name not in exported)
    ]
    assert wrong == []
