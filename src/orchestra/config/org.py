"""Configuration section ``org``."""

from __future__ import annotations

from orchestra.config.models import StrictModel


class OrganisationSection(StrictModel):
    """The organisation tree and its growth stage (owned by the organisation model)."""
