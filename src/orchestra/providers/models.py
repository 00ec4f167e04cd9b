"""The ``GET /v1/models`` body."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


def models_list_body(names: Iterable[str], *, created: datetime, owned_by: str) -> dict[str, Any]:
    """One list body both SDKs accept: Anthropic reads ``type``/``id``/``display_name``/
    ``created_at`` and its pagination fields, OpenAI reads ``object``/``id``/``created``/
    ``owned_by``; each ignores the other's fields."""
    created = created.astimezone(UTC)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    seconds = int(created.timestamp())
    data = [
        {
            "id": name,
            "type": "model",
            "object": "model",
            "display_name": name,
            "created_at": stamp,
            "created": seconds,
            "owned_by": owned_by,
        }
        for name in names
    ]
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
