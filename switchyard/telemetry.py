"""OpenTelemetry traces, exported over OTLP when the standard ``OTEL_*`` environment asks.

Off by default: no tracer provider is set up, the global one stays OpenTelemetry's
no-op proxy, and ``ENABLED`` stays False, so that code on a hot path checks one module
flag and does nothing else. On when ``OTEL_TRACES_EXPORTER`` lists ``otlp`` or an OTLP
endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``),
unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. The protocol is
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL``: ``grpc`` (the
default, as in OpenTelemetry's Python SDK) or ``http/protobuf``. The exporters read their
endpoint, headers and timeouts from the same environment, and the span buffer the batch
span processor's ``OTEL_BSP_*`` settings. Spans are made and encoded by
``switchyard.spans``, at a fraction of the SDK's cost per span (measured there).

Every Switchyard process calls ``setup`` once with its own default service name
(``switchyard-gateway``, ``switchyard-classifier``, ...), which ``OTEL_SERVICE_NAME`` or a
``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES`` overrides.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from switchyard.spans.shipping import SpanShipper

log = logging.getLogger(__name__)

ENABLED = False
"""True once ``setup`` installed an exporting tracer provider in this process."""

GRPC = "grpc"
HTTP_PROTOBUF = "http/protobuf"
PROTOCOLS = (GRPC, HTTP_PROTOBUF)

SERVICE_NAME_PREFIX = "switchyard-"

_shipper: SpanShipper | None = None


SERVER_FAULTS = frozenset({"INTERNAL", "UNAVAILABLE", "UNKNOWN", "DATA_LOSS", "DEADLINE_EXCEEDED"})
"""gRPC status codes that mark an RPC's span failed, on either side of the call (the
caller's own mistakes do not)."""


def record_grpc_code(span: trace.Span, code: str) -> None:
    """Give an RPC's span (either side of the call) its gRPC status code's name, and mark
    it failed when the code is a server fault."""
    span.set_attribute("rpc.grpc.status_code", code)
    if code in SERVER_FAULTS:
        span.set_status(trace.Status(trace.StatusCode.ERROR, code))


def passed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``OTEL_*`` variables of ``environ``: what a launcher hands to every process."""
    return {key: value for key, value in environ.items() if key.startswith("OTEL_")}


def requested(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces exported over OTLP."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {
        name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
    }
    if "otlp" in exporters:
        return True
    if "none" in exporters:
        return False
    return any(
        environ.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def protocol(environ: Mapping[str, str]) -> str:
    """The OTLP protocol the environment names for traces; ValueError for another."""
    chosen = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or GRPC
    ).strip()
    if chosen not in PROTOCOLS:
        raise ValueError(
            f"OTLP protocol {chosen!r} is not supported for traces: use one of {PROTOCOLS}"
        )
    return chosen


def service_name(default: str, environ: Mapping[str, str]) -> str:
    """``OTEL_SERVICE_NAME``, else ``service.name`` of ``OTEL_RESOURCE_ATTRIBUTES``, else
    ``default``."""
    named = environ.get("OTEL_SERVICE_NAME", "").strip()
    if named:
        return named
    for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = pair.partition("=")
        if key.strip() == "service.name" and value.strip():
            return value.strip()
    return default


def setup(default_service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install an exporting tracer provider if the environment asks for one (see the
    module); returns whether traces are on. Call once per process, before serving."""
    global ENABLED, _shipper
    environ = os.environ if environ is None else environ
    if not requested(environ):
        return False
    chosen = protocol(environ)
    # Imported only when on: a process without traces never loads the SDK.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    from switchyard.spans.grpc_export import GrpcTransport
    from switchyard.spans.recording import TracerProvider
    from switchyard.spans.sampling import SpanSampler
    from switchyard.spans.shipping import HttpTransport, SpanShipper, Transport

    transport: Transport = GrpcTransport() if chosen == GRPC else HttpTransport()
    name = service_name(default_service_name, environ)
    resource = Resource.create({"service.name": name})
    shipper = SpanShipper(transport, dict(resource.attributes), environ)
    provider = TracerProvider(
        SpanSampler.from_environment(environ), RandomIdGenerator(), shipper.add
    )
    trace.set_tracer_provider(provider)
    _shipper = shipper
    ENABLED = True
    log.info("traces exported over OTLP", extra={"otlp_protocol": chosen, "service": name})
    return True


def export_from_running_loop() -> None:
    """Make the OTLP/gRPC exports on the running event loop from now on, rather than as
    blocking calls of the sending thread (``switchyard.spans.grpc_export`` says why).
    Call once the loop serves, and ``stop_exporting_from_loop`` before it stops."""
    if _shipper is not None:
        _shipper.use_loop(asyncio.get_running_loop())


async def stop_exporting_from_loop() -> None:
    """Exports go back to the sending thread (the loop is about to stop)."""
    if _shipper is not None:
        await _shipper.leave_loop()


def shutdown() -> None:
    """Export the spans still buffered and stop the exporter (at the process's end)."""
    global ENABLED, _shipper
    if _shipper is not None:
        _shipper.shutdown()
    _shipper = None
    ENABLED = False


def tracer(name: str) -> trace.Tracer:
    """A tracer of this process's provider (the no-op one while traces are off)."""
    return trace.get_tracer(name)


@functools.lru_cache(maxsize=4096)  # a caller's hash, once per caller rather than per span
def hashed_identity(identity: str) -> str:
    """A caller's identity as span attributes carry it: a truncated SHA-256, which tells
    callers apart in a trace without putting their key id (or a raw key) in it."""
    return hashlib.sha256(identity.encode()).hexdigest()[:16]
