"""Configuration section ``knowledge``."""

from __future__ import annotations

from orchestra.config.models import StrictModel


class KnowledgeSection(StrictModel):
    """Knowledge store settings: location, embedding model, retention."""
