"""Configuration: ``orchestra.yaml``, validated, with environment overrides."""

from orchestra.config.check import (
    CheckReport,
    CrossCheck,
    Finding,
    check_config_file,
    check_config_text,
)
from orchestra.config.gateway import (
    BudgetConfig,
    BudgetLeaseSettings,
    CircuitSettings,
    GatewaySection,
    LimitsConfig,
    RateLimitConfig,
    RetrySettings,
    SharedStateSettings,
)
from orchestra.config.identity import (
    SAFE_ALGORITHMS,
    GroupMapping,
    IdentitySection,
    OIDCSettings,
    ServiceKey,
)
from orchestra.config.insight import (
    EscalationPath,
    InsightSection,
    IssueLabelsConfig,
    ROIAssumptions,
    SMTPSettings,
    WarningSettings,
)
from orchestra.config.knowledge import (
    EmbeddingConfig,
    HooksConfig,
    IngestConfig,
    KnowledgeSection,
    SecretsConfig,
)
from orchestra.config.loader import (
    ConfigInvalid,
    ConfigProblem,
    load_config,
    parse_config,
    yaml_line_index,
)
from orchestra.config.models import (
    TIERS,
    ModelConfig,
    ModelPrice,
    ProviderConfig,
    StrictModel,
    TeamOverride,
    TierConfig,
    TierName,
    UpstreamLimits,
)
from orchestra.config.names import OrgNames, close_matches
from orchestra.config.org import DeveloperConfig, OrganisationSection, UnitConfig
from orchestra.config.paths import (
    default_database_url,
    existing_database_url,
    find_config,
    orchestra_home,
    unborn_database,
)
from orchestra.config.policy import PoliciesSection
from orchestra.config.repositories import RepositoriesSection, RepositorySettings
from orchestra.config.rollout import ExitCriterion, RolloutPhase, RolloutSection
from orchestra.config.roster import RosterSection, TierOverrides
from orchestra.config.routing import RoutingSection
from orchestra.config.scheduling import SchedulingSettings
from orchestra.config.schema import OrchestraConfig
from orchestra.config.starter import STARTER_CONFIG, write_starter_config
from orchestra.config.telemetry import TelemetrySection

__all__ = [
    "SAFE_ALGORITHMS",
    "STARTER_CONFIG",
    "TIERS",
    "BudgetConfig",
    "BudgetLeaseSettings",
    "CheckReport",
    "CircuitSettings",
    "ConfigInvalid",
    "ConfigProblem",
    "CrossCheck",
    "DeveloperConfig",
    "EmbeddingConfig",
    "EscalationPath",
    "ExitCriterion",
    "Finding",
    "GatewaySection",
    "GroupMapping",
    "HooksConfig",
    "IdentitySection",
    "IngestConfig",
    "InsightSection",
    "IssueLabelsConfig",
    "KnowledgeSection",
    "LimitsConfig",
    "ModelConfig",
    "ModelPrice",
    "OIDCSettings",
    "OrchestraConfig",
    "OrgNames",
    "OrganisationSection",
    "PoliciesSection",
    "ProviderConfig",
    "ROIAssumptions",
    "RateLimitConfig",
    "RepositoriesSection",
    "RepositorySettings",
    "RetrySettings",
    "RolloutPhase",
    "RolloutSection",
    "RosterSection",
    "RoutingSection",
    "SMTPSettings",
    "SchedulingSettings",
    "SecretsConfig",
    "ServiceKey",
    "SharedStateSettings",
    "StrictModel",
    "TeamOverride",
    "TelemetrySection",
    "TierConfig",
    "TierName",
    "TierOverrides",
    "UnitConfig",
    "UpstreamLimits",
    "WarningSettings",
    "check_config_file",
    "check_config_text",
    "close_matches",
    "default_database_url",
    "existing_database_url",
    "find_config",
    "load_config",
    "orchestra_home",
    "parse_config",
    "unborn_database",
    "write_starter_config",
    "yaml_line_index",
]
