"""The one ASGI application: gateway endpoints plus the REST API (and later the dashboard)."""

from orchestra.server.app import (
    OPTIONS_ENV,
    ServeOptions,
    app_from_environment,
    build_app,
    open_gateway,
)
from orchestra.server.protocol import uvicorn_options
from orchestra.server.resuming import hosting_engine

__all__ = [
    "OPTIONS_ENV",
    "ServeOptions",
    "app_from_environment",
    "build_app",
    "hosting_engine",
    "open_gateway",
    "uvicorn_options",
]
