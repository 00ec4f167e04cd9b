"""Configuration section ``policies``: where the Cedar policies are and how they decide.

The policies themselves are ``.cedar`` files kept in version control (see
``docs/policies.md``); this section only names their folder and the few settings
around them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestra.config.models import StrictModel

REGION_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
"""Region names: ``eu``, ``us-east``, ``on-prem`` ..."""


class PoliciesSection(StrictModel):
    """The Cedar policy set: the shipped defaults plus the organisation's folder."""

    folder: str | None = None
    """Folder of ``.cedar`` files (relative to ``orchestra.yaml``), loaded after the
    shipped defaults. ``None``: the shipped defaults only."""
    default: Literal["permit", "deny"] = "permit"
    """``permit``: what no policy forbids is allowed (the solo and small-team stages:
    nothing breaks). ``deny``: only what a policy permits is allowed (the shipped
    role policies permit the usual work of each role)."""
    audit_permits: bool = False
    """Also audit the permits of ``require`` (API and CLI actions). Refusals are always
    audited; the gateway's permitted calls are in the ledger, never in the audit log."""
    cache_size: int = Field(default=4096, ge=0)
    """Decisions remembered per policy-set version (0: no cache)."""
