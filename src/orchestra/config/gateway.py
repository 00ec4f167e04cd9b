"""Configuration section ``gateway``."""

from __future__ import annotations

from orchestra.config.models import StrictModel


class GatewaySection(StrictModel):
    """Gateway settings: listen address, keys, limits, budgets, pricing, audit."""
