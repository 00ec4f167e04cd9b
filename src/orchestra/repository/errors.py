"""Errors about a repository's environment and baseline; each says what to change."""

from __future__ import annotations

from orchestra.errors import EngineError


class RepositoryError(EngineError):
    """A repository cannot be tested the way Orchestra needs."""


class EnvironmentNotFound(RepositoryError):
    """A configured environment (virtualenv, interpreter) does not exist."""


class PreflightFailed(RepositoryError):
    """The repository failed the checks made before any model call; nothing was spent."""

    def __init__(self, message: str, *, hint: str | None = None, first_error: str = "") -> None:
        super().__init__(message, hint=hint)
        self.first_error = first_error
        """The first real error line of the output (``No module named pytest``)."""
