"""Errors of capacity planning."""

from __future__ import annotations

from orchestra.errors import CapacityError

__all__ = ["CapacityError", "InvalidSweep", "TargetUnreachable"]


class InvalidSweep(CapacityError):
    """A sweep's levels, SLO or request shape cannot be measured."""


class TargetUnreachable(CapacityError):
    """The gateway (or the model behind it) refused or failed every request of a probe."""
