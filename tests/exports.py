"""Checks that pin a package's public surface, as httpx's ``tests/test_exported_members.py``.

A package's surface is its ``__all__``. :func:`assert_exports_pinned` checks that ``__all__``
names exactly what the package's namespace offers (so a rename or a stray import fails a
test, not a user), and that every name another Orchestra package imports from one of its
modules is in it (so no one depends on an internal). A module whose parent package lists it
in ``__all__`` (``orchestra.store.tables.gateway``) is public as a whole.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

SRC = Path(__file__).resolve().parents[1] / "src" / "orchestra"


def offered_names(package: ModuleType) -> set[str]:
    """Public names in ``package``'s namespace: neither ``_``-prefixed nor submodules, plus
    the names it resolves lazily on first use (a ``_EXPORTS`` map, as orchestra.knowledge
    has)."""
    names = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    names.discard("annotations")  # `from __future__ import annotations`
    names.update(getattr(package, "_EXPORTS", {}))
    return names


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@functools.cache
def _library_imports() -> tuple[tuple[str, str, str], ...]:
    """``(importing module, imported-from module, name)`` for every ``from X import name``
    in the library, parsed once per test process (every exports test reads them all)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        importer = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found += [(importer, node.module, alias.name) for alias in node.names]
    return tuple(found)


def outside_imports(package: str) -> Iterator[tuple[str, str, str]]:
    """``(importing module, imported-from module, name)`` for every ``from X import name``
    in the library, outside ``package``, where X is ``package`` or one of its modules."""
    for importer, module, name in _library_imports():
        if not _within(importer, package) and _within(module, package):
            yield importer, module, name


def _is_public_module(module: str) -> bool:
    """The module is listed in its parent package's ``__all__`` (public as a whole)."""
    parent, _, last = module.rpartition(".")
    return bool(parent) and last in getattr(importlib.import_module(parent), "__all__", ())


def surface_leaks(package: ModuleType) -> list[str]:
    """Names other packages import from ``package`` that its ``__all__`` does not list."""
    exported = set(package.__all__)
    leaks = []
    for importer, source, name in outside_imports(package.__name__):
        if _is_submodule(source, name):
            continue  # `from orchestra.x import module`: a module, not a name
        if name in exported or (source != package.__name__ and _is_public_module(source)):
            continue
        leaks.append(f"{importer} imports {name} from {source}")
    return leaks


def _is_submodule(package: str, name: str) -> bool:
    if not hasattr(importlib.import_module(package), "__path__"):
        return False
    return importlib.util.find_spec(f"{package}.{name}") is not None


def assert_exports_pinned(package: ModuleType) -> None:
    """``__all__`` lists each name once, exactly the names the package offers, each of them
    resolvable, and covers every name another package imports from it."""
    assert len(package.__all__) == len(set(package.__all__)), "a name is listed twice"
    assert set(package.__all__) == offered_names(package)
    for name in package.__all__:
        getattr(package, name)  # raises for a name listed but missing
    assert surface_leaks(package) == []
