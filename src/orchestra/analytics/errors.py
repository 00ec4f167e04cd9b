"""Errors of the analytics domain; each carries the HTTP status a route answers with."""

from __future__ import annotations

# The domain's base lives in orchestra.errors with the other layers' bases; re-exported here.
from orchestra.errors import AnalyticsError as AnalyticsError


class InvalidSignature(AnalyticsError):
    """A webhook's signature (GitHub) or token (GitLab) is missing or wrong."""

    status = 401


class MalformedPayload(AnalyticsError):
    """A webhook body or an imported file is not the documented payload format."""

    status = 400


class InvalidPeriod(AnalyticsError):
    """A period could not be read (``2026-11``, ``2026-Q4``, ``2026``, ``A..B``)."""

    status = 400


class NotVisible(AnalyticsError):
    """Developer-level figures asked for by someone who is not that developer, their lead
    or an admin."""

    status = 403


class UnknownKPI(AnalyticsError):
    """No KPI has this name."""

    status = 404


class UnknownUnit(AnalyticsError):
    """No unit or developer has this name."""

    status = 404


class InvalidAnswer(AnalyticsError):
    """A survey answer out of range, or a round name that cannot be used."""

    status = 400


class UnknownRound(AnalyticsError):
    """No survey round has this name."""

    status = 404


class RoundClosed(AnalyticsError):
    """The survey round is closed (or already exists, when opening it)."""

    status = 409


class AlreadyAnswered(AnalyticsError):
    """This developer already answered this round (one answer each)."""

    status = 409


class KeyRequired(AnalyticsError):
    """A route needs a valid gateway key and got none (or an unusable one)."""

    status = 401
