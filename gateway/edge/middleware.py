"""The outermost layer of every request: its id and trace context, the body size limit,
the headers every response carries, the access log, metrics, and the last word on
unexpected errors.

Pure ASGI rather than ``BaseHTTPMiddleware``: that one buffers streaming responses
through extra tasks and costs more per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Histogram
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.edge import request_context, request_span
from gateway.edge.client_ip import ClientAddress
from gateway.edge.drain import Drain
from gateway.edge.metrics import GatewayMetrics
from gateway.edge.tracing import TraceContext, request_id_from, trace_context
from gateway.errors.refusals import (
    GENERIC_INTERNAL_MESSAGE,
    Internal,
    PayloadTooLarge,
    error_response,
)
from switchyard import logs

access_log = logging.getLogger("switchyard.gateway.access")
log = logging.getLogger(__name__)

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
"""On every response, unless the route set its own (the page sets a stricter policy)."""


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: GatewayMetrics,
        drain: Drain,
        max_body_bytes: int,
        client_address: ClientAddress,
        unlimited_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.client_address = client_address
        self.app = app
        self.metrics = metrics
        self.drain = drain
        self.max_body_bytes = max_body_bytes
        self.unlimited_paths = unlimited_paths
        """Routes that read their body as it streams in and enforce their own limit."""
        self._latency: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        span = request_span.start(scope, headers)
        if span is None:
            trace = trace_context(headers.get("x-request-id"), headers.get("traceparent"))
        else:  # traces on: the backend continues this request's span
            trace = TraceContext(
                request_id_from(headers.get("x-request-id")), request_span.traceparent(span[0])
            )
        logs.request_id.set(trace.request_id)
        record = request_context.begin(trace, self.drain.draining)
        peer = scope.get("client")
        record.client = self.client_address.of(
            peer[0] if peer else "", headers.get("x-forwarded-for")
        )
        status = 500
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                # Raw header pairs, as ASGI carries them: this runs on every response.
                raw = list(message.get("headers", ()))
                present = {key for key, _ in raw}
                raw.append((b"x-request-id", trace.request_id.encode("latin-1")))
                # The version that answered, or on an error the one the request was
                # routed to: which version failed is what an operator needs to know.
                version = record.version or record.routed_version
                if version:
                    raw.append((b"x-model-version", version.encode("latin-1")))
                steps = [f"{name};dur={seconds * 1000:.2f}" for name, seconds in record.timings]
                if record.backend_s is not None:
                    steps.append(f"backend;dur={record.backend_s * 1000:.1f}")
                if steps:
                    raw.append((b"server-timing", ", ".join(steps).encode("latin-1")))
                raw.extend(pair for pair in SECURITY_HEADERS if pair[0] not in present)
                raw.extend(record.headers)
                message["headers"] = raw
            await send(message)

        seen = 0

        async def receive_with_limit() -> Message:
            # A chunked body, or one longer than it declared, is cut off as soon as it
            # passes the limit; FastAPI passes HTTPException through its body parsing to
            # the handler that writes the envelope.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise HTTPException(413)
            return message

        self.drain.enter()
        self.metrics.in_flight.inc()
        try:
            if scope["path"] in self.unlimited_paths:
                # Streamed and limited line by line by the route itself (bulk NDJSON).
                await self.app(scope, receive, send_with_headers)
                return
            if _declared_length(headers) > self.max_body_bytes:
                # Refused before a byte of it is read. (Starlette's own limit answers in
                # plain text, not in the gateway's error envelope.)
                await error_response(_too_large())(scope, receive, send_with_headers)
                return
            await self.app(scope, receive_with_limit, send_with_headers)
        except asyncio.CancelledError:
            if not started:
                status = CLIENT_CLOSED  # the server cancelled it: the client went away
            raise
        except Exception as exc:
            log.error("unexpected error handling %s", scope.get("path"), exc_info=exc)
            if not started:
                await error_response(Internal(GENERIC_INTERNAL_MESSAGE))(
                    scope, receive, send_with_headers
                )
        finally:
            self.drain.leave()
            self.metrics.in_flight.dec()
            self._observe(scope, status, record)
            if span is not None:
                request_span.end(span, scope["method"], _route_template(scope), status, record)

    @staticmethod
    def _live(
        scope: Scope,
        record: request_context.RequestRecord,
        model: str,
        version: str,
        status: int,
        elapsed: float,
    ) -> None:
        """The request in the live figures of the version it was routed to. Only the
        version's own failures count as its errors (see ``version_failed``); pinned and
        allowlisted requests are counted apart from the randomly assigned ones that
        guardrails judge, so that no single caller decides a comparison."""
        state = getattr(scope["app"].state, "gateway", None)
        if state is None:
            return
        if 200 <= status < 300:  # an answer the caller may report an outcome of
            state.answers.note(record.caller, record.trace.request_id, model, version)
        state.live.record(
            model,
            version,
            ok=not version_failed(status, record, state.settings.judged_min_budget_s),
            code=str(status),
            latency_s=elapsed,
            ttft_s=record.backend_s if record.stream else None,
            labels=record.labels,
            assigned=record.route_reason in ASSIGNED_REASONS and record.judged,
        )

    def _observe(self, scope: Scope, status: int, record: request_context.RequestRecord) -> None:
        route = _route_template(scope)
        method: str = scope["method"]
        elapsed = time.perf_counter() - record.started
        model = record.model or record.routed_model
        version = record.version or record.routed_version
        self.metrics.requests.labels(
            route, method, str(status), model, version, record.route_reason
        ).inc()
        if record.route_reason and version:
            self._live(scope, record, model, version, status, elapsed)
        key = (route, method)
        histogram = self._latency.get(key)
        if histogram is None:
            histogram = self._latency[key] = self.metrics.latency.labels(route, method)
        histogram.observe(elapsed)
        if record.backend_s is not None:
            self.metrics.backend_latency.labels(record.model, record.version).observe(
                record.backend_s
            )
        # The query string holds user text (GET /v1/summarize/stream?text=...): masked.
        path = scope["path"] + ("?<masked>" if scope.get("query_string") else "")
        access_log.info(
            "%s %s %d",
            method,
            path,
            status,
            extra={
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "model": record.model,
                "version": record.version,
                "route_reason": record.route_reason,
                "caller": record.caller,
                "client": record.client,
            },
        )


ASSIGNED_REASONS = frozenset({"canary", "stable"})
"""Route reasons of requests whose version the gateway chose at random (sticky weights)."""

CLIENT_CLOSED = 499
"""Status logged for a request whose client went away before an answer began."""


def version_failed(status: int, record: request_context.RequestRecord, min_budget_s: float) -> bool:
    """Whether an answer is the version's own failure: a 5xx (an internal error, its
    backend unavailable or overloaded, a deadline missed with a reasonable budget). A
    4xx, a caller's own limit, a cancel, or a deadline the caller set below
    ``min_budget_s`` never is."""
    if status < 500:
        return False
    budget = record.caller_budget_s
    return not (status == 504 and budget is not None and budget < min_budget_s)


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge("the request body is too large")


def _declared_length(headers: Headers) -> int:
    try:
        return int(headers.get("content-length", "0"))
    except ValueError:
        return 0
