"""Errors of the accounting domain.

Each carries what the gateway needs to answer in the client's own wire format: an HTTP
``status``, an Anthropic-style ``error_type`` (the gateway maps it to the OpenAI shape),
and, for refusals that clear with time, ``retry_after_s``.
"""

from __future__ import annotations

import math
from datetime import datetime

# The domain's base lives in orchestra.errors with the other layers' bases; re-exported here.
from orchestra.errors import AccountingError as AccountingError


class InvalidKey(AccountingError):
    """The API key is missing, unknown, revoked or past its rotation grace period."""

    status = 401
    error_type = "authentication_error"


class KeyNotFound(AccountingError):
    """No key has this id."""

    status = 404
    error_type = "not_found_error"


class BudgetNotFound(AccountingError):
    """No budget has this name."""

    status = 404
    error_type = "not_found_error"


class InvalidBudget(AccountingError):
    """A budget definition is malformed (unknown scope or period, negative cap...)."""

    status = 400
    error_type = "invalid_request_error"


class UnknownDimension(AccountingError):
    """Ledger totals were asked for by a dimension the rollups do not hold."""

    status = 400
    error_type = "invalid_request_error"


class UnknownName(AccountingError):
    """A key, budget or limit names a developer or unit the organisation does not have."""

    status = 400
    error_type = "invalid_request_error"


class UnknownPrice(AccountingError):
    """The model has no price: it is not built in, not configured and not local."""

    status = 400
    error_type = "invalid_request_error"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"no price is known for model {model!r}",
            hint=(
                f"add `price:` to models.{model} in orchestra.yaml or an entry to the price "
                "file (gateway.price_file); use zero prices for a free local model"
            ),
        )
        self.model = model


class BudgetExceeded(AccountingError):
    """A hard cap would be crossed by this call's reservation."""

    status = 429
    error_type = "rate_limit_error"

    def __init__(
        self,
        budget_name: str,
        *,
        cap_usd: str,
        spent_usd: str,
        reserved_usd: str,
        requested_usd: str,
        resets_at: datetime | None,
        now: datetime,
    ) -> None:
        when = (
            f"it resets at {resets_at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            if resets_at is not None
            else "it does not reset (a per-run budget)"
        )
        super().__init__(
            f"budget {budget_name!r} is exhausted: cap ${cap_usd}, spent ${spent_usd}, "
            f"reserved by calls in flight ${reserved_usd}, this call needs up to "
            f"${requested_usd}; {when}",
            hint="wait for the reset, lower max_tokens, use a cheaper tier, or ask an admin "
            "to raise the budget (orchestra budgets set)"
            if resets_at is not None
            else "continue the run with a higher budget: orchestra resume RUN --budget USD",
        )
        self.budget_name = budget_name
        self.resets_at = resets_at
        if resets_at is not None:
            self.retry_after_s = float(max(1, math.ceil((resets_at - now).total_seconds())))


class RateLimited(AccountingError):
    """A requests- or tokens-per-minute limit is reached."""

    status = 429
    error_type = "rate_limit_error"

    def __init__(self, limit_name: str, *, limit: int, retry_after_s: float) -> None:
        super().__init__(
            f"rate limit {limit_name} ({limit} per minute) reached; retry in {retry_after_s:.0f}s",
            hint="slow down, or ask an admin to raise gateway.limits in orchestra.yaml",
        )
        self.limit_name = limit_name
        self.retry_after_s = retry_after_s


class SecretError(AccountingError):
    """An encrypted secret cannot be read (wrong key, corrupted file, unknown name)."""


class RunOwnedElsewhere(AccountingError):
    """A run's key or budget was asked for by someone other than the run's developer."""

    status = 403
    error_type = "permission_error"
