"""Tracing: one OpenTelemetry trace from `campaign launch` through the workflows to each send.

Configured by the standard `OTEL_*` environment variables. Outbound reads only
`OTEL_TRACES_EXPORTER` (which exporters) and `OTEL_SDK_DISABLED`; everything else
(`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
`..._HEADERS`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, ...) is read by the SDK and the
exporter themselves. Unlike the OpenTelemetry default, an unset `OTEL_TRACES_EXPORTER`
means *off*: a process that nobody asked to trace gets no interceptor and pays nothing.

Spans are made by `temporalio.contrib.opentelemetry.TracingInterceptor`. It only adds a
header to the commands a workflow issues (never a command), and makes workflow spans
only when not replaying, so replayed histories and running campaigns are unaffected.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.util.types import AttributeValue
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

TRACER_NAME = "outbound"
_OFF = frozenset({"", "none"})


class TelemetryConfigError(ValueError):
    """An `OTEL_*` variable asks for something this installation cannot do."""


def _exporter(name: str) -> SpanExporter:
    """`otlp` is OTLP over HTTP/protobuf (the exporter that is installed); the endpoint,
    headers, timeout and compression come from `OTEL_EXPORTER_OTLP_*`."""
    if name in ("otlp", "otlp_proto_http"):
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            raise TelemetryConfigError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; use http/protobuf (port 4318)"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    raise TelemetryConfigError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (use otlp, console or none)")


def exporter_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The exporters `OTEL_TRACES_EXPORTER` names (comma-separated), none when tracing is off."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    return [name for name in names if name not in _OFF]


@dataclass
class Tracing:
    """The tracer provider of one process, or nothing when tracing is off."""

    provider: TracerProvider | None = None

    @classmethod
    def from_environment(cls, service: str) -> Tracing:
        """Build from `OTEL_*`; `service` names the process when `OTEL_SERVICE_NAME` does not."""
        names = exporter_names()
        if not names:
            return cls()
        processors: list[SpanProcessor] = [BatchSpanProcessor(_exporter(name)) for name in names]
        return cls.with_processors(service, processors)

    @classmethod
    def with_processors(cls, service: str, processors: list[SpanProcessor]) -> Tracing:
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: service}))
        provider = TracerProvider(resource=resource)
        for processor in processors:
            provider.add_span_processor(processor)
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def interceptors(self) -> list[ClientInterceptor]:
        """For `Client.connect`: the interceptor also applies to every worker of that client."""
        if self.provider is None:
            return []
        return [TracingInterceptor(self.provider.get_tracer(TRACER_NAME))]

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[None]:
        """A span around a piece of work in this process (the root of a launch's trace)."""
        if self.provider is None:
            yield
            return
        with self.provider.get_tracer(TRACER_NAME).start_as_current_span(name, attributes=attributes):
            yield

    def shutdown(self) -> None:
        """Export what is buffered. Short CLI processes end with `os._exit`, which skips
        the SDK's own exit hook, so every process calls this before it ends."""
        if self.provider is not None:
            self.provider.shutdown()


def annotate_current_span(attributes: Mapping[str, AttributeValue]) -> None:
    """Put Outbound's ids on the span the interceptor opened around this activity.
    Without tracing the current span is the no-op span and this costs a lookup."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)
