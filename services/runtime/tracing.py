"""The model services' spans, when traces are on (``switchyard.telemetry``).

Each call continues the caller's trace (the ``traceparent`` gRPC metadata the gateway
sends) with a span for the RPC. Each item the batcher runs adds, under the span that was
current when it was submitted (the RPC's, or the generation's):

- ``queue wait``: from its submission until it was taken into a batch;
- ``batch``: from then until its batch answered, with the batch's size;
- ``forward``: under ``batch``, the forward pass itself, timed where it ran (the model
  worker process or thread), so handing the batch over and the answer back are not in it.

A batch runs once for several calls, each of them in a trace of its own. Each call's trace
gets its own ``batch`` and ``forward`` spans, with the same times and a shared
``switchyard.batch.id``, rather than one batch span linked to every call: a trace then
shows everything its call waited for, and the batch id tells which calls shared a pass.
The spans are made after the fact with the times measured, so that nothing crosses to the
worker but two timestamps, and nothing at all while traces are off.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from switchyard import telemetry

In = TypeVar("In")
Out = TypeVar("Out")

_tracer = telemetry.tracer("switchyard.service")
_batch_ids = itertools.count(1)


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def rpc_span(
    method: str, metadata: Callable[[], Iterable[tuple[str, Any]] | None]
) -> contextlib.AbstractContextManager[Span | None]:
    """The current span of one RPC (``method``: its full gRPC path), continuing the
    caller's trace (``metadata``: the call's, read only while traces are on); None while
    traces are off (a shared no-op, so an untraced call builds nothing)."""
    return _traced_rpc(method, metadata) if telemetry.ENABLED else _NO_SPAN


@contextlib.contextmanager
def _traced_rpc(
    method: str, metadata: Callable[[], Iterable[tuple[str, Any]] | None]
) -> Iterator[Span | None]:
    carrier = {key: str(value) for key, value in metadata() or ()}
    service, _, name = method.lstrip("/").rpartition("/")
    with _tracer.start_as_current_span(
        method.lstrip("/"),
        context=propagate.extract(carrier),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def end_rpc(span: Span | None, code: str) -> None:
    """Give the RPC's span its status code (``OK``, ``INVALID_ARGUMENT``, ...)."""
    if span is None:
        return
    telemetry.record_grpc_code(span, code)


@dataclass(frozen=True, slots=True)
class ItemTrace:
    """Where a submitted item's spans go, and when it was submitted (``time.time_ns()``)."""

    parent: Context
    submitted_ns: int


def item_trace() -> ItemTrace | None:
    """The trace of an item submitted now, from the current span; None while off."""
    if not telemetry.ENABLED:
        return None
    return ItemTrace(context.get_current(), time.time_ns())


def timed_run(
    run_batch: Callable[[Sequence[In]], Sequence[Out]], inputs: Sequence[In]
) -> tuple[Sequence[Out], int, int]:
    """``run_batch(inputs)`` and when it started and ended: run where the batch runs
    (a module function, so a worker process can be handed it)."""
    started = time.time_ns()
    outputs = run_batch(inputs)
    return outputs, started, time.time_ns()


def batch_ran(
    traces: Sequence[ItemTrace | None],
    taken_ns: int,
    forward: tuple[int, int] | None,
    error: BaseException | None,
) -> None:
    """Each traced item's ``queue wait``, ``batch`` and ``forward`` spans (see the module)."""
    ended_ns = time.time_ns()
    size = len(traces)
    batch_id = next(_batch_ids)
    for item in traces:
        if item is None:
            continue
        _tracer.start_span("queue wait", context=item.parent, start_time=item.submitted_ns).end(
            end_time=max(taken_ns, item.submitted_ns)
        )
        batch = _tracer.start_span(
            "batch",
            context=item.parent,
            start_time=taken_ns,
            attributes={"switchyard.batch.size": size, "switchyard.batch.id": batch_id},
        )
        if error is not None:
            batch.set_status(Status(StatusCode.ERROR, type(error).__name__))
        if forward is not None:
            _tracer.start_span(
                "forward", context=trace.set_span_in_context(batch), start_time=forward[0]
            ).end(end_time=forward[1])
        batch.end(end_time=ended_ns)
