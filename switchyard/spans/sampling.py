"""Which spans are recorded: what ``OTEL_TRACES_SAMPLER`` asks, with the parent looked
up once per span, and client calls made outside any traced work left out.

The sampler names and ``OTEL_TRACES_SAMPLER_ARG`` are the specification's (``always_on``,
``always_off``, ``traceidratio`` and their ``parentbased_`` forms; the default is
``parentbased_always_on``), and a root span is decided by the SDK's own samplers. A span
with a parent follows the parent's sampled flag under a parent-based sampler, as the
SDK's ``ParentBased`` does with its default delegates, without the SDK's second and
third look-up of the current span and its result object per span.

The gateway's background loops (live figures, routing tables, guardrails, batch jobs)
call Redis every second or so; each call would otherwise be a trace of its own, a stream
of one-span traces that says nothing about any request. So a client span is recorded
only when it has a parent (a request's span, for example).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanContext, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util import types

log = logging.getLogger(__name__)

DEFAULT = "parentbased_always_on"
PARENT_BASED = "parentbased_"

Verdict = tuple[bool, TraceState | None, types.Attributes]
"""Whether the span is recorded and exported, its trace state, and attributes the
sampler adds."""


class SpanSampler:
    def __init__(self, root: Sampler, parent_based: bool) -> None:
        self.root = root
        """What decides a span without a parent (every span, when not parent-based)."""
        self.parent_based = parent_based

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> SpanSampler:
        name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or DEFAULT
        parent_based = name.startswith(PARENT_BASED)
        root_name = name.removeprefix(PARENT_BASED)
        if root_name == "always_on":
            return cls(ALWAYS_ON, parent_based)
        if root_name == "always_off":
            return cls(ALWAYS_OFF, parent_based)
        if root_name == "traceidratio":
            return cls(TraceIdRatioBased(_ratio(environ)), parent_based)
        log.warning("OTEL_TRACES_SAMPLER=%r is not supported: using %s", name, DEFAULT)
        return cls(ALWAYS_ON, True)

    def decide(
        self,
        parent: SpanContext,
        context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind,
        attributes: types.Attributes,
        links: Sequence[Link] | None,
    ) -> Verdict:
        if parent.is_valid:
            if self.parent_based:
                return parent.trace_flags.sampled, parent.trace_state, None
        elif kind is SpanKind.CLIENT:
            return False, None, None
        if self.root is ALWAYS_ON and not parent.is_valid:  # a root: no trace state to keep
            return True, None, None
        result = self.root.should_sample(context, trace_id, name, kind, attributes, links)
        return result.decision is Decision.RECORD_AND_SAMPLE, result.trace_state, result.attributes


def _ratio(environ: Mapping[str, str]) -> float:
    raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        ratio = float(raw) if raw else 1.0
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a ratio in [0, 1]: using 1.0", raw)
        return 1.0
    return ratio
