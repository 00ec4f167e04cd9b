"""The organisation: its tree of units, developers and roles, stages, and storage."""

from orchestra.org.checks import ORGANISATION_CHECK, organisation_findings
from orchestra.org.stages import (
    STAGES,
    Stage,
    StageAssessment,
    assess_stage,
    current_stage,
    next_stage,
    stage_changes,
    stage_for_headcount,
    stage_named,
)
from orchestra.org.sync import SyncResult, load_org, sync_org, sync_org_session
from orchestra.org.tree import (
    Developer,
    OrgInvalid,
    OrgProblem,
    OrgTree,
    OrgUnit,
    build_org_tree,
    org_problems,
)

__all__ = [
    "ORGANISATION_CHECK",
    "STAGES",
    "Developer",
    "OrgInvalid",
    "OrgProblem",
    "OrgTree",
    "OrgUnit",
    "Stage",
    "StageAssessment",
    "SyncResult",
    "assess_stage",
    "build_org_tree",
    "current_stage",
    "load_org",
    "next_stage",
    "org_problems",
    "organisation_findings",
    "stage_changes",
    "stage_for_headcount",
    "stage_named",
    "sync_org",
    "sync_org_session",
]
