"""Recorded spans to the bytes of an OTLP ``ExportTraceServiceRequest``.

Written straight in the protobuf wire format (field tag, then a varint, a fixed-width
number or a length-prefixed payload) instead of building ``opentelemetry-proto``
message objects, which is most of what the OTLP exporters' own encoder costs. Attribute
values repeat from span to span (routes, models, versions, status codes), so each
encoded key/value field is cached. Unsupported attribute values (None, mappings, mixed
sequences) are dropped, as the OpenTelemetry specification asks of invalid ones.
The message definitions are opentelemetry/proto/trace/v1/trace.proto and
common/v1/common.proto; the tests parse what this writes with the generated classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.trace import Link, SpanContext, StatusCode
from opentelemetry.util import types

from switchyard.spans.recording import Event, RecordedSpan, Scope

_INT64 = (-(2**63), 2**63 - 1)
_CACHE_LIMIT = 8192
_SCALARS = frozenset({str, bool, int, float})
_fields: dict[tuple[int, str, type, object], bytes] = {}

# Span.flags: the parent's "is remote" is known (bit 8), and whether it is (bit 9).
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def varint(number: int) -> bytes:
    """A protobuf base-128 varint (a negative int64 as its 64-bit two's complement)."""
    number &= 0xFFFFFFFFFFFFFFFF
    if number < 0x80:
        return bytes((number,))
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` is (field number << 3) | 2, as one byte."""
    return bytes((tag,)) + varint(len(payload)) + payload


def _any_value(value: object) -> bytes | None:
    """An ``AnyValue`` message, or None for a value OTLP attributes cannot carry."""
    if isinstance(value, str):
        return field(0x0A, value.encode("utf-8", "replace"))
    if isinstance(value, bool):  # before int: a bool is an int
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return b"\x18" + varint(value)
        return field(0x0A, str(value).encode())
    if isinstance(value, float):
        return b"\x21" + struct.pack("<d", value)
    if isinstance(value, bytes):
        return field(0x3A, value)
    if isinstance(value, Sequence):
        values = [_any_value(item) for item in value]
        if any(encoded is None for encoded in values):
            return None
        # ArrayValue { repeated AnyValue values = 1 } as AnyValue.array_value (5)
        return field(0x2A, b"".join(field(0x0A, encoded) for encoded in values if encoded))
    return None


def key_value(key: str, value: object) -> bytes:
    """A ``KeyValue`` message's bytes (empty for an unsupported value)."""
    encoded = _any_value(value)
    return b"" if encoded is None else field(0x0A, key.encode()) + field(0x12, encoded)


def attributes(tag: int, values: Mapping[str, types.AnyValue] | None) -> bytes:
    """Each attribute as a ``KeyValue`` in the repeated field ``tag``: the whole field of
    a scalar value comes from the cache after its first time."""
    if not values:
        return b""
    out = []
    for key, value in values.items():
        kind = type(value)
        if kind in _SCALARS:
            cache_key = (tag, key, kind, value)
            found = _fields.get(cache_key)
            if found is None:
                if len(_fields) >= _CACHE_LIMIT:
                    _fields.clear()  # unbounded values (batch ids, ...) must not grow it
                pair = key_value(key, value)
                found = _fields[cache_key] = field(tag, pair) if pair else b""
        else:
            pair = key_value(key, value)
            found = field(tag, pair) if pair else b""
        out.append(found)
    return b"".join(out)


def _flags(parent: SpanContext | None) -> bytes:
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
    return b"\x85\x01" + struct.pack("<I", flags)  # field 16, fixed32


def _event(event: Event) -> bytes:
    body = b"\x09" + struct.pack("<Q", event.time_ns) + field(0x12, event.name.encode())
    return field(0x5A, body + attributes(0x1A, event.attributes))


def _link(link: Link) -> bytes:
    context = link.context
    body = (
        field(0x0A, context.trace_id.to_bytes(16, "big"))
        + field(0x12, context.span_id.to_bytes(8, "big"))
        + (field(0x1A, context.trace_state.to_header().encode()) if context.trace_state else b"")
        + attributes(0x22, link.attributes)
        + b"\x35"  # field 6, fixed32: flags
        + struct.pack("<I", _HAS_IS_REMOTE | (_IS_REMOTE if context.is_remote else 0))
    )
    return field(0x6A, body)


def span(recorded: RecordedSpan) -> bytes:
    """One ``Span`` message's bytes (without its own tag and length)."""
    context = recorded.get_span_context()
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        parts.append(field(0x1A, context.trace_state.to_header().encode()))
    if recorded.parent is not None:
        parts.append(b"\x22\x08" + recorded.parent.span_id.to_bytes(8, "big"))
    parts.append(field(0x2A, recorded.name.encode("utf-8", "replace")))
    # The API's SpanKind starts at INTERNAL = 0; OTLP's at UNSPECIFIED = 0, INTERNAL = 1.
    parts.append(bytes((0x30, recorded.kind.value + 1)))
    end_ns = recorded.end_ns if recorded.end_ns is not None else recorded.start_ns
    parts.append(b"\x39" + struct.pack("<Q", recorded.start_ns))
    parts.append(b"\x41" + struct.pack("<Q", end_ns))
    parts.append(attributes(0x4A, recorded.attributes))
    parts.extend(_event(event) for event in recorded.events)
    parts.extend(_link(link) for link in recorded.links)
    if recorded.status_code is StatusCode.UNSET:
        parts.append(b"\x7a\x00")  # an empty Status, as OpenTelemetry's encoder writes it
    else:
        status = b"\x18" + varint(recorded.status_code.value)
        if recorded.status_message:
            status = field(0x12, recorded.status_message.encode()) + status
        parts.append(field(0x7A, status))
    parts.append(_flags(recorded.parent))
    return b"".join(parts)


def resource(values: Mapping[str, types.AnyValue]) -> bytes:
    """A ``Resource`` message's bytes: encoded once per process."""
    return attributes(0x0A, values)


def _scope(scope: Scope) -> bytes:
    body = field(0x0A, scope.name.encode())
    if scope.version:
        body += field(0x12, scope.version.encode())
    return body


def export_request(spans: Iterable[RecordedSpan], encoded_resource: bytes) -> bytes:
    """An ``ExportTraceServiceRequest`` carrying ``spans`` under one resource, grouped by
    instrumentation scope."""
    by_scope: dict[Scope, list[bytes]] = {}
    for recorded in spans:
        by_scope.setdefault(recorded.scope, []).append(span(recorded))
    return export_encoded(by_scope, encoded_resource)


def export_encoded(by_scope: Mapping[Scope, Sequence[bytes]], encoded_resource: bytes) -> bytes:
    """An ``ExportTraceServiceRequest`` of spans already encoded (``span``), by scope."""
    scope_spans = b"".join(
        field(
            0x12,
            field(0x0A, _scope(scope))
            + b"".join(field(0x12, encoded) for encoded in spans)
            + (field(0x1A, scope.schema_url.encode()) if scope.schema_url else b""),
        )
        for scope, spans in by_scope.items()
        if spans
    )
    return field(0x0A, field(0x0A, encoded_resource) + scope_spans)
