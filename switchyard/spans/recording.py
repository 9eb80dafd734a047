"""A tracer provider for the OpenTelemetry API whose spans are plain records.

A span here keeps what OTLP carries (ids, name, kind, times, attributes, events, links,
status) in slots and a dict, and is handed to a sink when it ends. What the SDK's span
adds and these leave out, because no Switchyard span needs it: attribute validation on
every call (values are checked once, when encoded, and unsupported ones dropped there),
span limits (``OTEL_SPAN_*_LIMIT``), a lock per span (each span is used by the one task
that made it), and spans that record without being sampled (nothing would export them).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation import _SPAN_KEY  # the key set_span_in_context sets
from opentelemetry.util import types

# The decorator the API's own Tracer declares ``start_as_current_span`` with: it makes a
# context manager that also decorates coroutine functions.
from opentelemetry.util._decorator import _agnosticcontextmanager

from switchyard.spans.sampling import SpanSampler

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


class Scope(NamedTuple):
    """The instrumentation scope a tracer was named after (one per tracer). A tuple,
    whose hash is computed in C: the span buffer looks each span's scope up."""

    name: str
    version: str | None = None
    schema_url: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    time_ns: int
    attributes: Mapping[str, types.AnyValue]


class RecordedSpan(trace.Span):
    """A sampled span: recorded until ``end``, then handed to the sink once."""

    __slots__ = (
        "_context",
        "_sink",
        "attributes",
        "end_ns",
        "events",
        "kind",
        "links",
        "name",
        "parent",
        "scope",
        "start_ns",
        "status_code",
        "status_message",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        scope: Scope,
        sink: Callable[[RecordedSpan], None],
        attributes: types.Attributes = None,
        links: Sequence[Link] = (),
        start_ns: int | None = None,
    ) -> None:
        self.name = name
        self._context = context
        self.parent = parent
        self.kind = kind
        self.scope = scope
        self._sink = sink
        self.attributes: dict[str, types.AnyValue] = dict(attributes) if attributes else {}
        self.links: list[Link] = list(links) if links else []
        self.events: list[Event] = []
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self.end_ns: int | None = None
        self.status_code = StatusCode.UNSET
        self.status_message: str | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self.end_ns is None

    def end(self, end_time: int | None = None) -> None:
        if self.end_ns is not None:
            return  # ended once; a second end changes nothing
        self.end_ns = time.time_ns() if end_time is None else end_time
        self._sink(self)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self.end_ns is None:
            self.attributes.update(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.end_ns is None:
            self.attributes[key] = value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self.end_ns is None:
            when = time.time_ns() if timestamp is None else timestamp
            self.events.append(Event(name, when, dict(attributes) if attributes else {}))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self.end_ns is None and context.is_valid:
            self.links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self.end_ns is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the specification has it: OK is final, UNSET changes nothing, and only an
        # error carries a description.
        if self.end_ns is not None or self.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
        if code is StatusCode.UNSET:
            return
        self.status_code = code
        self.status_message = description if code is StatusCode.ERROR else None

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        details: dict[str, types.AnyValue] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": escaped,
        }
        details.update(attributes or {})
        self.add_event("exception", details, timestamp)


def _parent_of(context: Context | None) -> SpanContext:
    """The context of the span current in ``context`` (or now): ``get_current_span``'s
    answer, with its ``isinstance`` check against the ``Span`` ABC skipped for the two
    span types this provider makes (in the gateway, that check profiled at a third of
    what starting a child span cost)."""
    span = (context if context is not None else get_current()).get(_SPAN_KEY)
    if span is None:
        return INVALID_SPAN_CONTEXT
    if type(span) is RecordedSpan or type(span) is NonRecordingSpan:
        return span.get_span_context()
    return trace.get_current_span(context).get_span_context()


def recording_now() -> bool:
    """Whether the current span is one this provider records (a sampled span, not ended)."""
    span = get_current().get(_SPAN_KEY)
    return type(span) is RecordedSpan and span.end_ns is None


class Tracer(trace.Tracer):
    """Starts ``RecordedSpan``s for one scope, sampled by the sampler it was given."""

    def __init__(
        self,
        scope: Scope,
        sampler: SpanSampler,
        ids: IdGenerator,
        sink: Callable[[RecordedSpan], None],
    ) -> None:
        self._scope = scope
        self._sampler = sampler
        self._ids = ids
        self._sink = sink

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent = _parent_of(context)
        if not parent.is_valid:
            trace_id = self._ids.generate_trace_id()
            sampled, trace_state, added = self._sampler.decide(
                parent, context, trace_id, name, kind, attributes, links
            )
        elif self._sampler.parent_based:  # what ``decide`` answers, without the call
            trace_id, sampled, trace_state, added = (
                parent.trace_id,
                parent.trace_flags.sampled,
                parent.trace_state,
                None,
            )
        else:
            trace_id = parent.trace_id
            sampled, trace_state, added = self._sampler.decide(
                parent, context, trace_id, name, kind, attributes, links
            )
        span_context = SpanContext(
            trace_id,
            self._ids.generate_span_id(),
            False,  # is_remote
            SAMPLED if sampled else NOT_SAMPLED,
            trace_state,
        )
        if not sampled:
            return NonRecordingSpan(span_context)
        if added:
            attributes = {**(attributes or {}), **added}
        return RecordedSpan(
            name,
            span_context,
            parent if parent.is_valid else None,
            kind,
            self._scope,
            self._sink,
            attributes,
            links or (),
            start_time,
        )

    @_agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class TracerProvider(trace.TracerProvider):
    """One ``Tracer`` per scope, all sharing a sampler, an id generator and a sink."""

    def __init__(
        self, sampler: SpanSampler, ids: IdGenerator, sink: Callable[[RecordedSpan], None]
    ) -> None:
        self._sampler = sampler
        self._ids = ids
        self._sink = sink
        self._tracers: dict[Scope, Tracer] = {}

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace.Tracer:
        scope = Scope(instrumenting_module_name, instrumenting_library_version, schema_url)
        found = self._tracers.get(scope)
        if found is None:
            found = self._tracers[scope] = Tracer(scope, self._sampler, self._ids, self._sink)
        return found
