"""The organisation's part of ``orchestra config check``: the tree and the stage."""

from __future__ import annotations

from pathlib import Path

from orchestra.config.check import CrossCheck, Finding
from orchestra.config.schema import OrchestraConfig
from orchestra.org.stages import assess_stage
from orchestra.org.tree import org_problems


def organisation_findings(config: OrchestraConfig, base_dir: Path) -> list[Finding]:
    """Problems in the organisation tree (errors) and its stage (warnings).

    ``base_dir`` is unused: the organisation section names no files.
    """
    del base_dir
    findings = [Finding(p.path, p.message, p.hint) for p in org_problems(config.organisation)]
    path = ("organisation", "stage") if config.organisation.stage else ("organisation",)
    findings.extend(
        Finding(path, warning, "see docs/organisation.md for the stages", warning=True)
        for warning in assess_stage(config).warnings
    )
    return findings


ORGANISATION_CHECK = CrossCheck("organisation", organisation_findings)
"""Hand this to :func:`orchestra.config.check.check_config_text` to check the organisation."""
