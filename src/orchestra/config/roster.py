"""Configuration section ``roster``."""

from __future__ import annotations

from orchestra.config.models import StrictModel


class RosterSection(StrictModel):
    """Where agent definitions come from and per-agent or per-category tier overrides."""
