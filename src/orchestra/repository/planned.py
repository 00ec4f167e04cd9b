"""What the plan's files will provide: module names, and the names defined in them.

A red test may fail with an import or attribute error only when it names something a
planned file will provide: a planned module (``pkg.mod`` for ``src/pkg/mod.py``), a
package holding a planned module, or a class or function already defined in a planned
file (``'Stock' object has no attribute 'low_stock'`` when ``stock.py`` is planned).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_JS_NAME = re.compile(
    r"(?:export\s+)?(?:async\s+)?(?:function\*?|class|const|let|var)\s+([A-Za-z_$][\w$]*)"
)
_GO_NAME = re.compile(r"^(?:func(?:\s*\([^)]*\))?|type)\s+([A-Za-z_]\w*)", re.MULTILINE)
_GO_MODULE = re.compile(r"^module\s+(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class PlannedCode:
    """Modules, packages and names the plan's files provide."""

    files: frozenset[str] = frozenset()
    modules: frozenset[str] = frozenset()
    """Dotted Python modules (``pkg.mod``), Go import paths, JS file paths without suffix."""
    names: frozenset[str] = frozenset()
    """Classes and functions (methods included) already defined in the planned files."""

    def provides_module(self, name: str) -> bool:
        """Whether ``name`` is a planned module or a package holding one."""
        name = name.strip()
        if not name:
            return False
        return any(m == name or m.startswith(name + ".") for m in self.modules)

    def provides_name(self, name: str) -> bool:
        """Whether ``name`` (``Stock``, ``Stock.add``, ``pkg.mod.f``) is defined in a
        planned file, or is a planned module's attribute path."""
        parts = [p for p in name.split(".") if p]
        if not parts:
            return False
        if any(p in self.names for p in parts):
            return True
        return self.provides_module(".".join(parts[:-1])) if len(parts) > 1 else False


def python_module(path: str, roots: Iterable[str] = ("src",)) -> str | None:
    """``src/pkg/mod.py`` -> ``pkg.mod``; ``pkg/__init__.py`` -> ``pkg``; else ``None``."""
    pure = PurePosixPath(path)
    if pure.suffix != ".py":
        return None
    parts = list(pure.with_suffix("").parts)
    for root in roots:
        root_parts = PurePosixPath(root).parts
        if tuple(parts[: len(root_parts)]) == root_parts and len(parts) > len(root_parts):
            parts = parts[len(root_parts) :]
            break
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None


def _python_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
    return names


def planned_code(worktree: Path, files: Iterable[str]) -> PlannedCode:
    """What ``files`` (the plan's, relative to ``worktree``) provide."""
    planned = sorted(set(files))
    modules: set[str] = set()
    names: set[str] = set()
    go_module = None
    if (worktree / "go.mod").is_file():
        found = _GO_MODULE.search((worktree / "go.mod").read_text(encoding="utf-8"))
        go_module = found.group(1) if found else None
    for rel in planned:
        path = worktree / rel
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        pure = PurePosixPath(rel)
        if pure.suffix == ".py":
            for roots in (("src",), ()):
                module = python_module(rel, roots)
                if module:
                    modules.add(module)
            names |= _python_names(text)
        elif pure.suffix == ".go":
            if go_module:
                parent = pure.parent.as_posix()
                modules.add(go_module if parent == "." else f"{go_module}/{parent}")
            names |= set(_GO_NAME.findall(text))
        elif pure.suffix in {".js", ".ts", ".mjs", ".cjs", ".jsx", ".tsx"}:
            modules.add(pure.with_suffix("").as_posix())
            names |= set(_JS_NAME.findall(text)) | {pure.stem}
    return PlannedCode(frozenset(planned), frozenset(modules), frozenset(names))
