"""The public names of orchestra.repository are pinned."""

from __future__ import annotations

from types import ModuleType

import orchestra.repository as repository


def test_all_names_are_exported_and_documented() -> None:
    for name in repository.__all__:
        value = getattr(repository, name)
        assert not isinstance(value, ModuleType), name
        assert value.__doc__, f"{name} has no docstring"
    public = {
        n
        for n, v in vars(repository).items()
        if not n.startswith("_") and not isinstance(v, ModuleType)
    }
    assert public == set(repository.__all__)
