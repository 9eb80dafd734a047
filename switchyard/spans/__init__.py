"""Spans made, buffered and sent over OTLP at a cost a per-request gateway can carry.

OpenTelemetry's Python SDK costs about 30 µs to make and end a span on this project's
2-core machines, and as much again to turn it into OTLP protobuf messages: with the
gateway's request span, its Redis call and its gRPC call, traces on added 1.38 times the
gateway's CPU per request (``python -m bench --only tracing``). These modules implement
the OpenTelemetry *API* (so every instrumentation package and ``trace.get_tracer`` work
unchanged) with a lighter recording span and an OTLP encoder that writes the protobuf
wire format directly, caching the encoding of attributes that repeat. The SDK still
provides what these modules do not need to redo: the sampler chosen by
``OTEL_TRACES_SAMPLER``, the resource from ``OTEL_RESOURCE_ATTRIBUTES``, the id
generator, and the OTLP exporters' transports (endpoint, headers, TLS, compression,
retries, all from the standard environment).

- ``recording``: the tracer provider, tracer and recording span;
- ``sampling``: which spans are recorded (``OTEL_TRACES_SAMPLER``);
- ``otlp_wire``: spans to an ``ExportTraceServiceRequest``'s bytes;
- ``shipping``: the buffer and the thread that sends batches through an OTLP exporter;
- ``grpc_export``: the OTLP/gRPC exporter sending encoded bytes, on the event loop;
- ``redis_calls``: a client span per Redis command made under a recorded span.
"""
