"""Insight computed from what was recorded: changes, deployments and incidents (webhooks,
files, git history), Orchestra's runs and ledger, the links between them, and KPIs with
their definitions, drill-down rows, DORA bands and per-stage targets; ROI from recorded
data; maturity; transition plans; surveys."""

from orchestra.analytics.alerts import (
    Alert,
    AlertNotFound,
    acknowledge,
    alert_history,
    list_alerts,
    record_findings,
    resolve,
)
from orchestra.analytics.bands import Band, band_versions, load_bands, rate
from orchestra.analytics.definitions import DEFINITIONS, DORA_KEYS, KPIDefinition, definition
from orchestra.analytics.early_warnings import INDICATORS, Finding, Indicator, find_warnings
from orchestra.analytics.errors import (
    AnalyticsError,
    InvalidPeriod,
    InvalidSignature,
    MalformedPayload,
    NotVisible,
    UnknownKPI,
    UnknownUnit,
)
from orchestra.analytics.escalation import Escalator, Message
from orchestra.analytics.gitlog import GitImport, import_git_history, is_ancestor
from orchestra.analytics.kpis import FORMULAS, Figure
from orchestra.analytics.links import link_all
from orchestra.analytics.payloads import IssueLabels, github_records, gitlab_records
from orchestra.analytics.report import (
    InsightSettings,
    KPIReport,
    check_warnings,
    import_payload_file,
    kpi_report,
)
from orchestra.analytics.roi import (
    Assumptions,
    ROIReport,
    TimeChange,
    bootstrap_interval,
    compute_roi,
    roi_report,
)
from orchestra.analytics.scope import (
    Asker,
    Period,
    Principal,
    Scope,
    check_visible,
    parse_period,
    principal_in,
    resolve_scope,
)
from orchestra.analytics.stage_targets import (
    DEFAULT_TARGETS,
    TargetCheck,
    compare_targets,
    targets_for,
)
from orchestra.analytics.trend import Trend, mann_kendall
from orchestra.analytics.webhooks import (
    Delivery,
    github_signature,
    parse_json,
    receive,
    verify_github,
    verify_gitlab,
)

__all__ = [
    "DEFAULT_TARGETS",
    "DEFINITIONS",
    "DORA_KEYS",
    "FORMULAS",
    "INDICATORS",
    "Alert",
    "AlertNotFound",
    "AnalyticsError",
    "Asker",
    "Assumptions",
    "Band",
    "Delivery",
    "Escalator",
    "Figure",
    "Finding",
    "GitImport",
    "Indicator",
    "InsightSettings",
    "InvalidPeriod",
    "InvalidSignature",
    "IssueLabels",
    "KPIDefinition",
    "KPIReport",
    "MalformedPayload",
    "Message",
    "NotVisible",
    "Period",
    "Principal",
    "ROIReport",
    "Scope",
    "TargetCheck",
    "TimeChange",
    "Trend",
    "UnknownKPI",
    "UnknownUnit",
    "acknowledge",
    "alert_history",
    "band_versions",
    "bootstrap_interval",
    "check_visible",
    "check_warnings",
    "compare_targets",
    "compute_roi",
    "definition",
    "find_warnings",
    "github_records",
    "github_signature",
    "gitlab_records",
    "import_git_history",
    "import_payload_file",
    "is_ancestor",
    "kpi_report",
    "link_all",
    "list_alerts",
    "load_bands",
    "mann_kendall",
    "parse_json",
    "parse_period",
    "principal_in",
    "rate",
    "receive",
    "record_findings",
    "resolve",
    "resolve_scope",
    "roi_report",
    "targets_for",
    "verify_github",
    "verify_gitlab",
]
