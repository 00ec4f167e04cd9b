"""Configuration section ``telemetry``: OpenTelemetry GenAI spans for model calls."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestra.config.models import StrictModel


class TelemetrySection(StrictModel):
    """Where the gateway's model-call spans go. Off unless ``traces`` names an exporter;
    prompt and reply content never goes into a span, nor any credential."""

    traces: Literal["none", "console", "otlp"] = "none"
    """``console``: spans printed on standard output (JSON); ``otlp``: sent over OTLP/HTTP
    to ``otlp_endpoint``."""
    otlp_endpoint: str | None = None
    """The collector's traces URL, e.g. ``http://127.0.0.1:4318/v1/traces`` (headers such
    as an API key come from ``OTEL_EXPORTER_OTLP_HEADERS``, never from this file)."""
    service_name: str = Field(default="orchestra-gateway", min_length=1, max_length=200)
    """The ``service.name`` resource attribute."""

    @model_validator(mode="after")
    def _endpoint_for_otlp(self) -> TelemetrySection:
        if self.traces == "otlp" and not self.otlp_endpoint:
            raise ValueError("telemetry.traces 'otlp' needs telemetry.otlp_endpoint")
        return self
