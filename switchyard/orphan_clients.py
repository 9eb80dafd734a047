"""A sampler that leaves out client calls made outside any traced work.

The gateway's background loops (live figures, routing tables, guardrails, batch jobs)
call Redis every second or so; each call would otherwise be a trace of its own, a stream
of one-span traces that says nothing about any request. A client span is kept when it has
a parent (a request's span, for example); every other span is sampled as the
``OTEL_TRACES_SAMPLER`` environment says (parent-based, always on, by default).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class DropOrphanClientSpans(sampling.Sampler):
    def __init__(self) -> None:
        # What the SDK would choose without this sampler (it reads OTEL_TRACES_SAMPLER).
        self._inner = sampling._get_from_env_or_default()

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> sampling.SamplingResult:
        if (
            kind == SpanKind.CLIENT
            and not get_current_span(parent_context).get_span_context().is_valid
        ):
            return sampling.SamplingResult(sampling.Decision.DROP)
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"DropOrphanClientSpans{{{self._inner.get_description()}}}"
