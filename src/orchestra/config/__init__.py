"""Configuration: ``orchestra.yaml``, validated, with environment overrides."""

from orchestra.config.knowledge import (
    EmbeddingConfig,
    HooksConfig,
    IngestConfig,
    KnowledgeSection,
    SecretsConfig,
)
from orchestra.config.loader import ConfigInvalid, ConfigProblem, load_config, parse_config
from orchestra.config.models import (
    TIERS,
    ModelConfig,
    ModelPrice,
    ProviderConfig,
    StrictModel,
    TeamOverride,
    TierConfig,
    TierName,
)
from orchestra.config.org import DeveloperConfig, OrganisationSection, UnitConfig
from orchestra.config.paths import default_database_url, find_config, orchestra_home
from orchestra.config.repositories import RepositoriesSection, RepositorySettings
from orchestra.config.roster import RosterSection, TierOverrides
from orchestra.config.schema import OrchestraConfig

__all__ = [
    "TIERS",
    "ConfigInvalid",
    "ConfigProblem",
    "DeveloperConfig",
    "EmbeddingConfig",
    "HooksConfig",
    "IngestConfig",
    "KnowledgeSection",
    "ModelConfig",
    "ModelPrice",
    "OrchestraConfig",
    "OrganisationSection",
    "ProviderConfig",
    "RepositoriesSection",
    "RepositorySettings",
    "RosterSection",
    "SecretsConfig",
    "StrictModel",
    "TeamOverride",
    "TierConfig",
    "TierName",
    "TierOverrides",
    "UnitConfig",
    "default_database_url",
    "find_config",
    "load_config",
    "orchestra_home",
    "parse_config",
]
