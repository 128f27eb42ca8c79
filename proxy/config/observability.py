"""The `metrics:` and `tracing:` sections (docs/observability.md explains each key).

The base is restated rather than imported from proxy/config/model.py, which imports this
module (as proxy/config/resilience.py does).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Fraction = Annotated[float, Field(ge=0, le=1)]
Seconds = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class MetricsConfig(_Section):
    """Prometheus metrics, served on the admin listener at ``/metrics``."""

    enabled: bool = True
    # Event-loop lag is sampled by a timer that asks to run every this many seconds and
    # records how late it ran.
    loop_lag_interval_s: Seconds = 0.5
    # Also pushed by OTLP over HTTP (protobuf), e.g. http://127.0.0.1:4318/v1/metrics, every
    # otlp_interval_s; null: only /metrics (proxy/observability/otlp_metrics.py).
    otlp_endpoint: str | None = None
    otlp_interval_s: Seconds = 15.0
    otlp_timeout_s: Seconds = 10.0

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _otlp_url(value)

    @model_validator(mode="after")
    def _pushed_only_when_kept(self) -> MetricsConfig:
        if self.otlp_endpoint is not None and not self.enabled:
            raise ValueError("otlp_endpoint needs enabled: true (no metrics are kept otherwise)")
        return self


class TracingConfig(_Section):
    """OpenTelemetry traces: a server span per request, a client span per upstream attempt."""

    enabled: bool = False
    # OTLP over HTTP (protobuf), e.g. http://127.0.0.1:4318/v1/traces; null: spans are
    # made (and traceparent sent upstream) but exported nowhere unless a test adds an exporter.
    otlp_endpoint: str | None = None
    sample_ratio: Fraction = 1.0  # of traces Junction starts; a client's sampled flag is kept
    service_name: str = "junction"
    export_timeout_s: Seconds = 10.0

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _otlp_url(value)


def _otlp_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        # It is shown by /admin/config; credentials go in OTEL_EXPORTER_OTLP_HEADERS.
        raise ValueError("must not carry credentials (set OTEL_EXPORTER_OTLP_HEADERS)")
    return value
