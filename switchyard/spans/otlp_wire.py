"""Recorded spans to the bytes of an OTLP ``ExportTraceServiceRequest``.

Written straight in the protobuf wire format (field tag, then a varint, a fixed-width
number or a length-prefixed payload) instead of building ``opentelemetry-proto``
message objects, which is most of what the OTLP exporters' own encoder costs. A span is
encoded on the thread that ends it, so each one is a handful of C-level steps: the fixed
fields are packed by precompiled structs, and what repeats from span to span (a name
with its kind; a set of attributes, such as a backend call's or a request's route,
model, version and status) is encoded once and cached. Unsupported attribute values
(None, mappings, mixed sequences) are dropped, as the OpenTelemetry specification asks
of invalid ones. The message definitions are opentelemetry/proto/trace/v1/trace.proto
and common/v1/common.proto; the tests parse what this writes with the generated classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

from switchyard.spans.recording import Event, RecordedSpan, Scope

_INT64 = (-(2**63), 2**63 - 1)
_CACHE_LIMIT = 8192
_SCALARS = frozenset({str, bool, int, float})
_fields: dict[tuple[int, str, type, object], bytes] = {}
_blocks: dict[tuple[object, ...], bytes] = {}
_heads: dict[tuple[str, int], bytes] = {}

# Span.flags: the parent's "is remote" is known (bit 8), and whether it is (bit 9).
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_FLAGS = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE)  # field 16, fixed32
_FLAGS_REMOTE_PARENT = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE | _IS_REMOTE)
_STATUS_UNSET = b"\x7a\x00"  # an empty Status, as OpenTelemetry's encoder writes it

# Big-endian: a 16-bit tag-and-length pair (one byte each) before each id's bytes.
_IDS = struct.Struct(">HQQHQ")  # trace_id (1, 16 bytes as two halves), span_id (2, 8 bytes)
_PARENT = struct.Struct(">HQ")  # parent_span_id (4, 8 bytes)
_TIMES = struct.Struct("<BQBQ")  # start and end time (7 and 8, fixed64), little-endian
_LOW_64 = (1 << 64) - 1


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


_LENGTHS = tuple(varint(length) for length in range(4096))
"""The varints of the lengths most fields have (a span is a few hundred bytes)."""


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` is (field number << 3) | 2, as one byte."""
    size = len(payload)
    return b"".join((bytes((tag,)), _LENGTHS[size] if size < 4096 else varint(size), payload))


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


def _each_attribute(tag: int, values: Mapping[str, types.AnyValue]) -> bytes:
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


def attributes(tag: int, values: Mapping[str, types.AnyValue] | None) -> bytes:
    """Each attribute as a ``KeyValue`` in the repeated field ``tag``. A whole set of
    scalar attributes seen before comes from the cache in one look-up, keyed by its
    items and their types (``1``, ``1.0`` and ``True`` are equal keys but different
    values); each field of a new set is cached on its own."""
    if not values:
        return b""
    items = tuple(values.items())
    try:
        cache_key = (tag, items, *map(type, values.values()))
        found = _blocks.get(cache_key)
    except TypeError:  # an unhashable value (a list): never cached as a set
        return _each_attribute(tag, values)
    if found is None:
        found = _each_attribute(tag, values)
        # Only sets of scalars are kept: (1, 2) and (True, 2) are equal keys too, and the
        # types of a sequence's items are not in the key (so such a set never hits).
        if _SCALARS.issuperset(cache_key[2:]):
            if len(_blocks) >= _CACHE_LIMIT:
                _blocks.clear()
            _blocks[cache_key] = found
    return found


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


def _head(name: str, kind: SpanKind) -> bytes:
    """The name and kind fields, cached: a process names its spans after a few routes,
    commands and methods."""
    # Keyed by the kind's number: an Enum member's own hash is computed in Python.
    cache_key = (name, kind._value_)
    found = _heads.get(cache_key)
    if found is None:
        if len(_heads) >= _CACHE_LIMIT:
            _heads.clear()
        # The API's SpanKind starts at INTERNAL = 0; OTLP's at UNSPECIFIED = 0, INTERNAL = 1.
        encoded = field(0x2A, name.encode("utf-8", "replace")) + bytes((0x30, kind.value + 1))
        found = _heads[cache_key] = encoded
    return found


def _trace_state(context: SpanContext) -> bytes:
    state = context.trace_state
    if state is DEFAULT_TRACE_STATE or not state:
        return b""
    return field(0x1A, state.to_header().encode())


def span(recorded: RecordedSpan) -> bytes:
    """One ``Span`` message as an entry of ``ScopeSpans.spans``: its tag, its length and
    its bytes, ready to be joined with others of its scope."""
    context = recorded.get_span_context()
    trace_id = context.trace_id
    parent = recorded.parent
    end_ns = recorded.end_ns if recorded.end_ns is not None else recorded.start_ns
    parts = [
        b"",  # the entry's tag and length, once the rest is known
        _IDS.pack(0x0A10, trace_id >> 64, trace_id & _LOW_64, 0x1208, context.span_id),
        _trace_state(context),
        b"" if parent is None else _PARENT.pack(0x2208, parent.span_id),
        _head(recorded.name, recorded.kind),
        _TIMES.pack(0x39, recorded.start_ns, 0x41, end_ns),
        attributes(0x4A, recorded.attributes),
    ]
    if recorded.events:
        parts.extend(_event(event) for event in recorded.events)
    if recorded.links:
        parts.extend(_link(link) for link in recorded.links)
    if recorded.status_code is StatusCode.UNSET:
        parts.append(_STATUS_UNSET)
    else:
        status = b"\x18" + varint(recorded.status_code.value)
        if recorded.status_message:
            status = field(0x12, recorded.status_message.encode()) + status
        parts.append(field(0x7A, status))
    parts.append(_FLAGS if parent is None or not parent.is_remote else _FLAGS_REMOTE_PARENT)
    size = sum(map(len, parts))
    parts[0] = b"\x12" + (_LENGTHS[size] if size < 4096 else varint(size))
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
            + b"".join(spans)
            + (field(0x1A, scope.schema_url.encode()) if scope.schema_url else b""),
        )
        for scope, spans in by_scope.items()
        if spans
    )
    return field(0x0A, field(0x0A, encoded_resource) + scope_spans)
