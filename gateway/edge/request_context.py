"""What the gateway knows about the request being handled, shared by its layers.

One ``RequestRecord`` per request, made by ``RequestContextMiddleware`` and reachable
through ``current()`` from any code handling that request (stream tasks included, as
they copy the context and share the same record).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from opentelemetry.trace import Span

from gateway.edge.tracing import TraceContext


@dataclass(slots=True)
class RequestRecord:
    trace: TraceContext
    arrived_draining: bool = False
    started: float = field(default_factory=time.perf_counter)
    model: str = ""
    version: str = ""
    """The model version that answered (empty until one did)."""
    routed_model: str = ""
    routed_version: str = ""
    route_reason: str = ""
    """Where the router sent the request and why, whether or not an answer came."""
    stream: bool = False
    judged: bool = True
    """Whether guardrails may judge the version by this request (a bulk stream's length is
    its body's, not the version's speed: counted apart, as a pinned request is)."""
    labels: list[str] = field(default_factory=list)
    """The top label of each classified text, for the live label distribution."""
    backend_s: float | None = None
    caller_budget_s: float | None = None
    """The time budget the caller asked for (``X-Request-Timeout``), if any."""
    client: str = ""
    """The caller's address (see ``gateway.edge.client_ip``)."""
    caller: str = ""
    """Who called (``key:<id>``, ``jwt:<subject>``), once authenticated: never the key."""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    """Headers the answer carries whatever it is (rate limits, cache), set on the way."""

    timings: list[tuple[str, float]] = field(default_factory=list)
    """Steps of the pipeline and their seconds, for ``Server-Timing``."""
    backend_spans: list[Span] | None = None
    """The client spans of the calls made to model services (traces on), until they end."""

    def add_header(self, name: str, value: str) -> None:
        self.headers.append((name.encode("latin-1"), value.encode("latin-1")))

    def route(self, model: str, version: str, reason: str) -> None:
        self.routed_model = model
        self.routed_version = version
        self.route_reason = reason
        if reason:
            self.add_header("X-Route-Reason", reason)

    def answered_by(self, model: str, version: str, backend_s: float | None = None) -> None:
        self.model = model
        self.version = version
        if backend_s is not None:
            self.backend_s = backend_s


_current: ContextVar[RequestRecord | None] = ContextVar("gateway_request", default=None)


def current() -> RequestRecord:
    record = _current.get()
    assert record is not None, "outside a request"
    return record


def begin(trace: TraceContext, draining: bool) -> RequestRecord:
    record = RequestRecord(trace, draining)
    _current.set(record)
    return record
