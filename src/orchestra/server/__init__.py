"""The one ASGI application: gateway endpoints plus the REST API (and later the dashboard).

:func:`hosting_engine` is imported lazily: ``orchestra gateway`` workers import this package
and must not load the engine (nor DBOS) for a name they never use.
"""

from __future__ import annotations

import importlib
import typing

from orchestra.server.app import (
    OPTIONS_ENV,
    ServeOptions,
    app_from_environment,
    build_app,
    open_gateway,
)
from orchestra.server.listen import run_server
from orchestra.server.protocol import uvicorn_options

if typing.TYPE_CHECKING:
    from orchestra.server.resuming import hosting_engine

_EXPORTS = {"hosting_engine": "orchestra.server.resuming"}

__all__ = [
    "OPTIONS_ENV",
    "ServeOptions",
    "app_from_environment",
    "build_app",
    "hosting_engine",
    "open_gateway",
    "run_server",
    "uvicorn_options",
]


def __getattr__(name: str) -> typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestra.server' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
