"""Errors the gateway answers with, in whichever wire format the client speaks.

Each error carries its HTTP status, the Anthropic error type, ``error_type`` (the OpenAI
shape is derived from it) and, for limits, budgets and overloads, a ``retry-after``. The official
SDKs pick their exception class from the status code, so the status is the contract.
"""

from __future__ import annotations

from orchestra.errors import GatewayError


class GatewayHTTPError(GatewayError):
    """A request the gateway refuses or could not serve, with how to answer it."""

    status: int = 500
    error_type: str = "api_error"
    """Anthropic error type (``invalid_request_error``, ``rate_limit_error`` ...)."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
        retry_after_s: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        if status is not None:
            self.status = status
        if error_type is not None:
            self.error_type = error_type
        self.retry_after_s = retry_after_s
        self.code = code
        """OpenAI error ``code`` (``model_not_found``, ``rate_limit_exceeded`` ...)."""
        self.counted = False
        """Already counted in the request metrics (by the model-call path)."""


class BadRequest(GatewayHTTPError):
    """Malformed JSON or a body that is not a request of this endpoint."""

    status = 400
    error_type = "invalid_request_error"


class UnsupportedMediaType(GatewayHTTPError):
    """The body is not ``application/json``."""

    status = 415
    error_type = "invalid_request_error"


class PayloadTooLarge(GatewayHTTPError):
    """The body exceeds ``gateway.max_body_bytes``."""

    status = 413
    error_type = "request_too_large"


class Unauthenticated(GatewayHTTPError):
    """No key, or a key that is unknown, revoked or expired."""

    status = 401
    error_type = "authentication_error"


class Forbidden(GatewayHTTPError):
    """The key is valid but may not do this (admin endpoint, model not allowed)."""

    status = 403
    error_type = "permission_error"


class UnknownModel(GatewayHTTPError):
    """The requested model is neither a configured model, an alias nor a tier."""

    status = 404
    error_type = "not_found_error"


class NotFound(GatewayHTTPError):
    """No such endpoint."""

    status = 404
    error_type = "not_found_error"


class LimitRefused(GatewayHTTPError):
    """A rate limit or a dollar budget refuses the request (429 with ``retry-after``)."""

    status = 429
    error_type = "rate_limit_error"


class UpstreamFailed(GatewayHTTPError):
    """Every model of the chain failed; carries the last upstream status."""

    status = 502
    error_type = "api_error"


class Overloaded(GatewayHTTPError):
    """The upstream said it is overloaded (529) and no fallback could serve."""

    status = 529
    error_type = "overloaded_error"


class UpstreamTimeout(GatewayHTTPError):
    """The upstream did not answer in time."""

    status = 504
    error_type = "timeout_error"


class UnpricedModel(GatewayHTTPError):
    """A model that may serve the call has no price, so no dollar budget could hold it.

    Unknown is never free: the call is refused before it reaches the upstream.
    """

    status = 503

    def __init__(self, model: str) -> None:
        super().__init__(
            f"model {model!r} has no price, so its calls cannot be held against a budget",
            hint=(
                f"the operator must add `price:` to models.{model} in orchestra.yaml or an "
                "entry to the price file (gateway.price_file), then reload"
            ),
            code="model_unpriced",
        )
        self.model = model


class CircuitOpen(GatewayHTTPError):
    """Every upstream of the chain has an open circuit breaker."""

    status = 503
    error_type = "overloaded_error"


class SharedStateUnavailable(GatewayHTTPError):
    """Redis (``gateway.shared_state``) did not answer and ``on_error`` is ``closed``: the
    call is refused rather than let past limits the replicas share."""

    status = 503
    error_type = "overloaded_error"

    def __init__(self, what: str, retry_after_s: float) -> None:
        super().__init__(
            f"the gateway's shared state (Redis) is unreachable, so {what} cannot be checked",
            hint="retry shortly; the operator should check gateway.shared_state's Redis",
            retry_after_s=retry_after_s,
            code="shared_state_unavailable",
        )
