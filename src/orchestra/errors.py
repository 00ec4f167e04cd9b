"""The one exception hierarchy of Orchestra.

Every error a user can meet says what happened (the message) and what to do about it
(``hint``). Each layer has one base here, so callers can catch a domain's errors without
importing the domain; the domain's own subclasses live next to the code that raises them.

The tree follows the layers (``docs/architecture.md``): a class derives from the base of its
own layer, never from a higher one's, so catching a layer's base never catches a refusal of
a layer it calls. From the lowest layer to the highest::

    OrchestraError                      errors: message + hint
    ├── StoreError                      store
    ├── ConfigError                     config (``location``)
    │   └── ConfigInvalid                 config.loader (every problem)
    ├── RosterError                     roster
    │   └── RosterInvalid                 roster.definition (every problem)
    ├── OrgError                        org
    │   └── OrgInvalid                    org.tree (every problem)
    ├── KnowledgeError                  knowledge
    │   └── HookInputError                knowledge.hook
    ├── ToolError                       tools
    │   └── WorkspaceError                tools.workspace
    ├── IdentityError                   identity  (``status``: 401 or 403)
    │   └── TokenRefused, NotAuthenticated, NotAllowed    identity.errors
    ├── ProviderError                   providers
    │   └── WireFormatError               providers.errors  (wire answer, see below)
    │       └── TranslationError
    ├── AccountingError                 accounting  (wire answer, see below)
    │   ├── InvalidKey, KeyNotFound, BudgetNotFound, InvalidBudget, UnknownName,
    │   │   UnknownPrice, BudgetExceeded, RateLimited, SecretError      accounting.errors
    │   └── InvalidSpendQuery             accounting.spend
    ├── PolicyError                     policy  (wire answer, see below)
    │   ├── PolicyInvalid                 policy.sources (every problem, file and line)
    │   └── PolicyDenied                  policy.model (403: a policy refused the request)
    ├── RegistryError                   registry (``status``)
    │   └── AgentUnknown, VersionUnknown, InvalidDefinition, RegistryConflict,
    │       AgentNotInPool, UnknownUnit                  registry.errors
    ├── AnalyticsError                  analytics  (``status``: the HTTP answer)
    │   └── InvalidSignature, MalformedPayload, InvalidPeriod, NotVisible, UnknownKPI
    ├── GatewayError                    gateway
    │   ├── GatewayHTTPError              gateway.errors  (wire answer, see below)
    │   │   ├── BadRequest, UnsupportedMediaType, PayloadTooLarge, Unauthenticated,
    │   │   │   Forbidden, UnknownModel, NotFound, LimitRefused, UpstreamFailed,
    │   │   │   Overloaded, UpstreamTimeout, UnpricedModel, CircuitOpen
    │   │   └── UpstreamClientError         gateway.upstream
    │   └── UpstreamConnectionError       gateway.http_client (also an ``OSError``)
    │       └── UpstreamTimeoutError        (also a ``TimeoutError``)
    ├── EngineError                     engine
    │   ├── ModelCallFailed               engine.model
    │   │   └── BudgetExhausted
    │   └── RunNotFound                   engine.runs
    ├── PipelineError                   pipelines
    │   └── RunFailed                     pipelines.test_first.steps (ends a run as failed)
    ├── ExperimentError                 experiments
    │   └── SuiteInvalid, BudgetSpent     experiments.errors
    ├── ApiError                        server.api  (``status``: the HTTP answer)
    ├── CapacityError                   capacity
    └── ScriptError                     testing (the test doubles, above the library)

**Wire answer.** An error the gateway may answer a client with carries ``status`` (the
HTTP status: the official SDKs pick their exception class from it), ``error_type`` (the
Anthropic error type, ``invalid_request_error``, ``rate_limit_error`` ...; the OpenAI shape
is derived from it) and, for refusals that clear with time, ``retry_after_s``. One name,
``error_type``, is used for the Anthropic type everywhere.

**Exit codes.** The CLI prints an error's message and its ``fix:`` on stderr and exits 2:
the user can correct the input, the configuration or the name and try again. A command
that ran and whose answer is "no" (a pipeline run that failed or was stopped by its
budget, a check that found errors) exits 1. See ``docs/cli.md``.
"""

from __future__ import annotations

__all__ = [
    "AccountingError",
    "AnalyticsError",
    "ApiError",
    "CapacityError",
    "ConfigError",
    "EngineError",
    "ExperimentError",
    "GatewayError",
    "IdentityError",
    "KnowledgeError",
    "OrchestraError",
    "OrgError",
    "PipelineError",
    "PolicyError",
    "ProviderError",
    "RegistryError",
    "RosterError",
    "SchedulingError",
    "StoreError",
    "ToolError",
]


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


class StoreError(OrchestraError):
    """The database could not be opened, migrated or written."""


class ConfigError(OrchestraError):
    """The configuration file or environment is invalid."""

    def __init__(self, message: str, *, hint: str | None = None, location: str | None = None):
        super().__init__(message, hint=hint)
        self.location = location

    def __str__(self) -> str:
        prefix = f"{self.location}: " if self.location else ""
        text = f"{prefix}{self.message}"
        return f"{text}\n  fix: {self.hint}" if self.hint else text


class RosterError(OrchestraError):
    """An agent definition is malformed or the roster breaks a rule."""


class OrgError(OrchestraError):
    """The organisation tree is invalid (cycle, unknown parent, duplicate member)."""


class SchedulingError(OrchestraError):
    """Scheduling limits or quotas are inconsistent (a quota over the cap, an unknown unit)."""


class KnowledgeError(OrchestraError):
    """The knowledge store could not store, search or ingest."""


class ToolError(OrchestraError):
    """An agent tool could not do what it was asked (a path outside its workspace ...)."""


class IdentityError(OrchestraError):
    """Who is asking could not be established, or may not do what they asked."""

    status: int = 401
    """HTTP status the API answers with (401: not authenticated, 403: not allowed)."""


class ProviderError(OrchestraError):
    """A provider's wire format could not be read, written or translated."""


class AccountingError(OrchestraError):
    """Keys, prices, budgets, limits, the ledger or secrets refused or failed.

    Carries the wire answer the gateway gives when it meets one (see the module's docstring).
    """

    status: int = 500
    """HTTP status the gateway answers with."""
    error_type: str = "api_error"
    """Anthropic error type (``authentication_error``, ``rate_limit_error`` ...)."""
    retry_after_s: float | None = None
    """For refusals that clear with time: when to try again."""


class PolicyError(OrchestraError):
    """A Cedar policy set is invalid, or a policy refused a request.

    Carries a wire answer like :class:`AccountingError`: a refusal is 403
    ``permission_error``, an invalid policy set 400 ``invalid_request_error``.
    """

    status: int = 400
    """HTTP status an endpoint answers with."""
    error_type: str = "invalid_request_error"
    """Anthropic error type (the OpenAI shape is derived from it)."""


class GatewayError(OrchestraError):
    """A model call could not be routed, authorised, budgeted or served."""


class RegistryError(OrchestraError):
    """The agent registry refused a change or a lookup (unknown agent or version, an
    invalid definition, an agent outside a pool; a policy's refusal is a ``PolicyError``).

    Carries the HTTP status an API answers with (404 unknown, 403 refused, 409 conflict,
    422 invalid definition).
    """

    status: int = 400
    """HTTP status an API answers with."""


class EngineError(OrchestraError):
    """A pipeline run could not start, continue or finish."""


class PipelineError(OrchestraError):
    """A pipeline could not take its run further (a gate that could not be met ...)."""


class ExperimentError(OrchestraError):
    """A suite, an experiment or a rollout could not be built, run or judged."""


class AnalyticsError(OrchestraError):
    """Insight data could not be imported, or a figure could not be computed or shown."""

    status: int = 400
    """HTTP status a route answers with (401 bad signature, 403 not visible ...)."""


class ApiError(OrchestraError):
    """The REST API could not take a request (its body, a feature not configured here)."""

    status: int = 400
    """HTTP status the API answers with."""


class CapacityError(OrchestraError):
    """A capacity sweep could not be set up or measured."""
