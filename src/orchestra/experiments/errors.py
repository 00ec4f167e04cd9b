"""Errors of the experiments domain."""

from __future__ import annotations

# The domain's base lives in orchestra.errors with the other layers' bases; re-exported here.
from orchestra.errors import ExperimentError as ExperimentError


class SuiteInvalid(ExperimentError):
    """A suite or experiment file could not be read, or names something that is not there."""


class BudgetSpent(ExperimentError):
    """The experiment's budget is spent: the remaining pairs were not run."""
