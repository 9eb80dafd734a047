"""The span of each HTTP request, when traces are on (``switchyard.telemetry``).

Made by ``RequestContextMiddleware`` rather than OpenTelemetry's ASGI middleware: the
gateway's own middleware already knows, at the end, the route, the model version and why
it was chosen, and the status; and the ASGI middleware's spans per message sent or
received would cost more than the request span itself. The span continues the caller's
``traceparent`` and is the parent of the Redis calls made meanwhile and of a client span
for each call to a model service, whose context is the ``traceparent`` sent with that
call, so the service's spans continue it. The client spans are made here rather than by
a gRPC client interceptor: an aio interceptor wraps every call in a task of its own,
which changes how a stream is cancelled when its caller leaves, and costs more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import Token

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.datastructures import Headers
from starlette.types import Scope

from gateway.edge import request_context
from gateway.edge.request_context import RequestRecord
from switchyard import telemetry

_tracer = telemetry.tracer("switchyard.gateway")


Started = tuple[Span, Token[Context]]


def start(scope: Scope, headers: Headers) -> Started | None:
    """The request's span, made current (None while traces are off), and the token that
    ``end`` detaches."""
    if not telemetry.ENABLED:
        return None
    # Most requests carry no trace context: the propagators' parsing is then skipped (the
    # raw header names are checked, lower-case bytes as the server gives them).
    carried = not PROPAGATED_RAW.isdisjoint(dict(scope["headers"]))
    parent = propagate.extract(headers) if carried else None
    span = _tracer.start_span(scope["method"], context=parent, kind=SpanKind.SERVER)
    return span, context.attach(trace.set_span_in_context(span, parent))


PROPAGATED_RAW = frozenset({b"traceparent", b"tracestate", b"baggage"})
"""The headers of the default propagators (W3C trace context and baggage)."""


def traceparent(span: Span) -> str:
    """The W3C ``traceparent`` naming ``span``: what the backend continues."""
    ids = span.get_span_context()
    # Bytes to hex rather than formatting the ints: a third of the f-string's time, and
    # this runs twice per request.
    trace_id = ids.trace_id.to_bytes(16, "big").hex()
    return f"00-{trace_id}-{ids.span_id.to_bytes(8, 'big').hex()}-{_FLAGS_HEX[ids.trace_flags]}"


_FLAGS_HEX = tuple(f"{flags:02x}" for flags in range(256))


def end(started: Started, method: str, route: str, status: int, record: RequestRecord) -> None:
    """Name the span after its route, give it what the request came to, and end it."""
    span, token = started
    context.detach(token)
    for client in record.backend_spans or ():
        # A stream's call lasts as long as the response: it ends with it.
        if client.is_recording():
            client.end()
    if not span.is_recording():
        return  # not sampled: nothing it is given would be kept
    span.update_name(f"{method} {route}")
    # One call, not one per attribute: each is a call and a recording check (a lock too,
    # on the OpenTelemetry SDK's own spans).
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status,
    }
    model = record.model or record.routed_model
    version = record.version or record.routed_version
    if model:
        attributes["switchyard.model"] = model
    if version:
        attributes["switchyard.model.version"] = version
    if record.route_reason:
        attributes["switchyard.route.reason"] = record.route_reason
    if record.caller:
        # Never the key, nor even the key's id: a hash tells callers apart.
        attributes["switchyard.caller.hash"] = telemetry.hashed_identity(record.caller)
    span.set_attributes(attributes)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


Metadata = tuple[tuple[str, str], ...]


def client_metadata(rpc: str, address: str, metadata: Metadata) -> Metadata:
    """``metadata`` for a call of ``rpc`` (``package.Service/Method``) to ``address`` about
    to be made: while traces are on, a client span for the call is started under the
    request's, and the ``traceparent`` sent names it. ``end_clients`` ends it."""
    if not telemetry.ENABLED:
        return metadata
    span = _tracer.start_span(rpc, kind=SpanKind.CLIENT, attributes=_call_attributes(rpc, address))
    record = request_context.current()
    if record.backend_spans is None:
        record.backend_spans = []
    record.backend_spans.append(span)
    if not span.get_span_context().is_valid:
        return metadata
    sent = traceparent(span)
    return tuple([(key, sent if key == "traceparent" else value) for key, value in metadata])


def call_linker() -> Callable[[Metadata], None] | None:
    """For a request whose backend call has a recorded client span: what links that span
    to the call that carries the request when the call is another request's (whose
    ``traceparent`` it sends, so that the service's spans are in that trace)."""
    if not telemetry.ENABLED:
        return None
    spans = request_context.current().backend_spans
    if not spans or not spans[-1].is_recording():
        return None
    span = spans[-1]

    def link(carrier: Metadata) -> None:
        context = trace.get_current_span(propagate.extract(dict(carrier))).get_span_context()
        span.add_link(context, {"switchyard.call.shared": True})

    return link


@functools.lru_cache(maxsize=256)  # the same few per backend, made once (spans copy them)
def _call_attributes(rpc: str, address: str) -> dict[str, str | int]:
    service, _, method = rpc.rpartition("/")
    host, _, port = address.rpartition(":")
    attributes: dict[str, str | int] = {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": method,
        "server.address": host or address,
    }
    if port.isdigit():
        attributes["server.port"] = int(port)
    return attributes


def end_clients(code: str) -> None:
    """End the request's open client spans with the call's gRPC status code name."""
    for span in request_context.current().backend_spans or ():
        if span.is_recording():
            telemetry.record_grpc_code(span, code)
            span.end()
