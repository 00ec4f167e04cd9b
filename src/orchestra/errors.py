"""The one exception hierarchy of Orchestra.

Every error a user can meet says what happened (the message) and what to do about it
(``hint``). Subpackages add their own subclasses here, so callers can catch a domain's
errors without importing the domain.
"""

from __future__ import annotations


class OrchestraError(Exception):
    """Base of every error Orchestra raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class ConfigError(OrchestraError):
    """The configuration file or environment is invalid."""

    def __init__(self, message: str, *, hint: str | None = None, location: str | None = None):
        super().__init__(message, hint=hint)
        self.location = location

    def __str__(self) -> str:
        prefix = f"{self.location}: " if self.location else ""
        text = f"{prefix}{self.message}"
        return f"{text}\n  fix: {self.hint}" if self.hint else text


class StoreError(OrchestraError):
    """The database could not be opened, migrated or written."""


class RosterError(OrchestraError):
    """An agent definition is malformed or the roster breaks a rule."""


class OrgError(OrchestraError):
    """The organisation tree is invalid (cycle, unknown parent, duplicate member)."""


class GatewayError(OrchestraError):
    """A model call could not be routed, authorised, budgeted or served."""


class EngineError(OrchestraError):
    """A pipeline run could not start, continue or finish."""


class KnowledgeError(OrchestraError):
    """The knowledge store could not store, search or ingest."""
