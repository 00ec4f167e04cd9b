"""``orchestra.engine``'s public surface is exactly its ``__all__`` (as httpx pins its own)."""

from __future__ import annotations

from types import ModuleType

import orchestra.engine


def public_names(package: ModuleType) -> list[str]:
    """Names the package exposes that are neither private nor its own submodules."""
    return sorted(
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    )


def test_all_imports_are_exported() -> None:
    assert sorted(orchestra.engine.__all__) == public_names(orchestra.engine)


def test_all_is_sorted_and_unique() -> None:
    names = orchestra.engine.__all__
    assert len(set(names)) == len(names)
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
