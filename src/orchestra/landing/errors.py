"""Errors of the merge queue; each says what to do."""

from __future__ import annotations

from orchestra.errors import EngineError


class LandingError(EngineError):
    """A branch cannot be queued, or the queue cannot be worked on."""

    status: int = 400
    """HTTP status an API would answer with (404 unknown run, 409 already queued)."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = 400) -> None:
        super().__init__(message, hint=hint)
        self.status = status
