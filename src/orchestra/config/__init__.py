"""Configuration: ``orchestra.yaml``, validated, with environment overrides."""

from orchestra.config.check import (
    CheckReport,
    CrossCheck,
    Finding,
    check_config_file,
    check_config_text,
)
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
from orchestra.config.roster import RosterSection, TierOverrides
from orchestra.config.schema import OrchestraConfig

__all__ = [
    "TIERS",
    "CheckReport",
    "ConfigInvalid",
    "ConfigProblem",
    "CrossCheck",
    "DeveloperConfig",
    "EmbeddingConfig",
    "Finding",
    "HooksConfig",
    "IngestConfig",
    "KnowledgeSection",
    "ModelConfig",
    "ModelPrice",
    "OrchestraConfig",
    "OrganisationSection",
    "ProviderConfig",
    "RosterSection",
    "SecretsConfig",
    "StrictModel",
    "TeamOverride",
    "TierConfig",
    "TierName",
    "TierOverrides",
    "UnitConfig",
    "check_config_file",
    "check_config_text",
    "default_database_url",
    "find_config",
    "load_config",
    "orchestra_home",
    "parse_config",
]
