"""Checking that a webhook came from GitHub or GitLab, and taking it in once.

GitHub signs the raw body with HMAC-SHA256 under the webhook's secret and sends
``X-Hub-Signature-256: sha256=<hex>``; GitLab sends the secret token itself in
``X-Gitlab-Token``. Both are compared in constant time. A delivery (``X-GitHub-Delivery``,
``X-Gitlab-Event-UUID``) already taken in is acknowledged and not applied again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestra.analytics.errors import InvalidSignature, MalformedPayload
from orchestra.analytics.ingest import store_delivery
from orchestra.analytics.payloads import IssueLabels, github_records, gitlab_records
from orchestra.store import Database


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(secret: str, body: bytes, header: str | None) -> None:
    """Raise :class:`InvalidSignature` unless ``header`` signs ``body`` under ``secret``."""
    if not header or not hmac.compare_digest(github_signature(secret, body), header):
        raise InvalidSignature(
            "the X-Hub-Signature-256 header is missing or does not match the body",
            hint="set the same secret in GitHub's webhook and in insight.github_secret",
        )


def verify_gitlab(secret: str, header: str | None) -> None:
    """Raise :class:`InvalidSignature` unless ``header`` is the configured token."""
    if not header or not hmac.compare_digest(secret.encode(), header.encode()):
        raise InvalidSignature(
            "the X-Gitlab-Token header is missing or wrong",
            hint="set the same secret token in GitLab's webhook and in insight.gitlab_secret",
        )


def parse_json(body: bytes) -> Mapping[str, Any]:
    """The body as a JSON object, or :class:`MalformedPayload`."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload("the body is not JSON", hint="send application/json") from exc
    if not isinstance(payload, dict):
        raise MalformedPayload("the body is not a JSON object", hint="send the event body")
    return payload


@dataclass(frozen=True)
class Delivery:
    """What became of one webhook delivery."""

    delivery_id: str
    event: str
    records: int
    """Records the event carried (0 for events Orchestra does not read)."""
    duplicate: bool
    """Already taken in: nothing was applied again."""


def receive(
    db: Database,
    *,
    source: str,
    event: str,
    delivery_id: str,
    payload: Mapping[str, Any],
    labels: IssueLabels | None = None,
) -> Delivery:
    """Read ``payload`` (a verified ``source`` event) and store its records once."""
    if not delivery_id:
        raise MalformedPayload(
            "the delivery has no id",
            hint="GitHub sends X-GitHub-Delivery, GitLab X-Gitlab-Event-UUID",
        )
    parse = github_records if source == "github" else gitlab_records
    records = parse(event, payload, labels)
    stored = store_delivery(db, f"{source}:{delivery_id}", event, records)
    return Delivery(delivery_id, event, len(records), duplicate=not stored)
