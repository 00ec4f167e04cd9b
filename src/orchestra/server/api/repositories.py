"""The repositories the REST API works on: named in ``server.repositories``, never a path.

:func:`allowed_repository` turns a caller's repository name into its configured path, or
refuses (404, with the close matches) and audits the refusal under the caller's name.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from orchestra.errors import ApiError
from orchestra.server.api.endpoint import Call


class UnknownRepository(ApiError):
    """The repository named is not one this server works on."""

    status = 404


async def allowed_repository(call: Call[Any, Any], name: str, refusal: str) -> Path:
    """The path of the allow-listed repository ``name``; a refusal is audited as
    ``refusal`` (``run.refused``, ``knowledge.refused``) with the name asked for."""
    allowed = call.ctx.current_config.server.repositories
    path = allowed.get(name)
    if path is None:
        details = {"reason": "repository not allowed", "repository": name}
        await call.blocking(
            call.ctx.accounting().audit.append, call.identity.actor, refusal, name, details
        )
        close = difflib.get_close_matches(name, list(allowed), n=3, cutoff=0.5)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else ("allowed: " + ", ".join(sorted(allowed)))
            if allowed
            else "an admin lists them in server.repositories of orchestra.yaml"
        )
        raise UnknownRepository(f"this server works on no repository named {name!r}", hint=hint)
    if not path.is_absolute() and call.ctx.base_dir is not None:
        path = call.ctx.base_dir / path
    return path
