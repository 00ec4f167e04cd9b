"""Re-exports of the section models, one module per owning domain."""

from orchestra.config.engine import EngineSection
from orchestra.config.gateway import GatewaySection
from orchestra.config.knowledge import KnowledgeSection
from orchestra.config.models import TeamOverride
from orchestra.config.org import OrganisationSection
from orchestra.config.roster import RosterSection

__all__ = [
    "EngineSection",
    "GatewaySection",
    "KnowledgeSection",
    "OrganisationSection",
    "RosterSection",
    "TeamOverride",
]
