"""Configuration section ``routing``: which chain of models serves an agent's calls.

A rule sends every tier call of an agent (``agents``), or of any agent of a category
(``categories``), to a named route (``routes``) or to one of the organisation's tiers.
Precedence: agent > category > team (``teams.<squad>.tiers``) > the tier (``tiers``). The
gateway trusts the agent a call names only from a pipeline run's key (the engine's).
"""

from __future__ import annotations

from pydantic import Field

from orchestra.config.models import StrictModel, TierConfig


class RoutingSection(StrictModel):
    """Routing by agent and by category (see the module's docstring)."""

    routes: dict[str, TierConfig] = Field(default_factory=dict)
    """Named chains: route -> ``{model, fallbacks}``, e.g. ``local: {model: qwen-coder,
    fallbacks: [claude-haiku-4-5]}``."""
    agents: dict[str, str] = Field(default_factory=dict)
    """Agent name -> route or tier, e.g. ``{python-developer: local}``."""
    categories: dict[str, str] = Field(default_factory=dict)
    """Agent category -> route or tier, e.g. ``{languages: hybrid}``."""
