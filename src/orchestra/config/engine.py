"""Configuration section ``engine``."""

from __future__ import annotations

from orchestra.config.models import StrictModel


class EngineSection(StrictModel):
    """Pipeline engine settings: concurrency, workspace limits, test command."""
