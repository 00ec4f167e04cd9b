"""The one ASGI application: gateway endpoints plus the REST API (and later the dashboard)."""

from orchestra.server.app import ServeOptions, app_from_environment, build_app, open_gateway

__all__ = ["ServeOptions", "app_from_environment", "build_app", "open_gateway"]
