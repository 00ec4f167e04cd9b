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


class RepositoryNotServed(ApiError):
    """What was asked for lies in a repository this server does not work on."""

    status = 403


def _configured(call: Call[Any, Any]) -> dict[str, Path]:
    """``server.repositories``: name -> path (a relative one under the config's folder)."""
    found = {}
    for name, path in call.ctx.current_config.server.repositories.items():
        if not path.is_absolute() and call.ctx.base_dir is not None:
            path = call.ctx.base_dir / path
        found[name] = path
    return found


async def allowed_repository(call: Call[Any, Any], name: str, refusal: str) -> Path:
    """The path of the allow-listed repository ``name``; a refusal is audited as
    ``refusal`` (``run.refused``, ``knowledge.refused``) with the name asked for."""
    allowed = _configured(call)
    path = allowed.get(name)
    if path is None:
        details = {"reason": "repository not allowed", "repository": name}
        await call.audit(refusal, name, details)
        close = difflib.get_close_matches(name, list(allowed), n=3, cutoff=0.5)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else ("allowed: " + ", ".join(sorted(allowed)))
            if allowed
            else "an admin lists them in server.repositories of orchestra.yaml"
        )
        raise UnknownRepository(f"this server works on no repository named {name!r}", hint=hint)
    return path


async def repository_name(call: Call[Any, Any], path: str, target: str, refusal: str) -> str:
    """The allow-list's name of the repository at ``path`` (a run's, a queue entry's);
    refused (403, audited as ``refusal`` on ``target``) when the server does not work on
    it — its path is never shown."""
    configured = _configured(call)

    def find() -> str | None:
        wanted = Path(path).expanduser().resolve()
        return next((n for n, p in configured.items() if p.expanduser().resolve() == wanted), None)

    name = await call.blocking(find)
    if name is not None:
        return name
    await call.audit(refusal, target, {"reason": "repository not allowed"})
    raise RepositoryNotServed(
        f"{target} is in a repository this server does not work on",
        hint="an admin lists the server's repositories in server.repositories; "
        "or use the CLI on the machine that holds it",
    )
