"""Configuration: ``orchestra.yaml``, validated, with environment overrides."""

from orchestra.config.loader import ConfigInvalid, ConfigProblem, load_config, parse_config
from orchestra.config.models import (
    TIERS,
    ModelConfig,
    ModelPrice,
    ProviderConfig,
    TeamOverride,
    TierConfig,
    TierName,
)
from orchestra.config.paths import default_database_url, find_config, orchestra_home
from orchestra.config.schema import OrchestraConfig

__all__ = [
    "TIERS",
    "ConfigInvalid",
    "ConfigProblem",
    "ModelConfig",
    "ModelPrice",
    "OrchestraConfig",
    "ProviderConfig",
    "TeamOverride",
    "TierConfig",
    "TierName",
    "default_database_url",
    "find_config",
    "load_config",
    "orchestra_home",
    "parse_config",
]
