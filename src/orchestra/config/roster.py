"""Configuration section ``roster``: where agent definitions come from, and tier overrides."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from orchestra.config.models import StrictModel, TierName


class TierOverrides(StrictModel):
    """Move agents to another tier than the one their definition names.

    An agent's own entry wins over its category's entry.
    """

    agents: dict[str, TierName] = Field(default_factory=dict)
    """Agent name -> tier, e.g. ``{python-developer: sonnet}``."""
    categories: dict[str, TierName] = Field(default_factory=dict)
    """Category -> tier for every agent in it, e.g. ``{security: opus}``."""


class RosterSection(StrictModel):
    """Where agent definitions come from and per-agent or per-category tier overrides."""

    directories: list[Path] = Field(default_factory=list)
    """Extra folders of agent files loaded after the built-in roster (relative paths are
    resolved against the folder holding ``orchestra.yaml``)."""
    import_dir: Path = Path(".orchestra/agents")
    """Where ``orchestra agents import`` copies validated files; always loaded when present."""
    tier_overrides: TierOverrides = Field(default_factory=TierOverrides)
    """Per-agent and per-category tier changes; see :func:`orchestra.roster.effective_tier`."""
