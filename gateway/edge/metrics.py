"""The gateway's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "switchyard_gateway_requests",
            "HTTP requests answered, by route, status, the model version routed to and why"
            " (route_reason: pinned, allowlist, canary, stable).",
            ["route", "method", "status", "model", "version", "route_reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "switchyard_gateway_request_duration_seconds",
            "Time from a request's arrival to the end of its answer (whole stream for SSE).",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.backend_latency = Histogram(
            "switchyard_gateway_backend_duration_seconds",
            "Time spent waiting on the model service (unary calls; first token for streams).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "switchyard_gateway_requests_in_flight",
            "HTTP requests being handled now (open streams included).",
            registry=self.registry,
        )
        self.open_streams = Gauge(
            "switchyard_gateway_open_streams",
            "Server-Sent Event streams open now.",
            registry=self.registry,
        )
        self.limiter_unavailable = Counter(
            "switchyard_gateway_rate_limit_unavailable",
            "Requests whose rate limits could not be checked (Redis unreachable).",
            registry=self.registry,
        )
        self.streamed_tokens = Counter(
            "switchyard_gateway_streamed_tokens",
            "Pieces of summaries sent to clients over SSE.",
            ["model", "version"],
            registry=self.registry,
        )
        self.guardrail_rollbacks = Counter(
            "switchyard_gateway_guardrail_rollbacks",
            "Canaries this replica rolled back for breaching a guardrail (error_rate, latency).",
            ["model", "version", "breach"],
            registry=self.registry,
        )
        self.guardrail_steps = Counter(
            "switchyard_gateway_guardrail_steps",
            "Automatic canary steps this replica made.",
            ["model", "version"],
            registry=self.registry,
        )
        self.shadow_requests = Counter(
            "switchyard_gateway_shadow_requests",
            "Copies of stable's requests for a shadow version, by outcome: compared, failed"
            " (an error or its deadline), dropped (this replica's shadow calls all busy).",
            ["model", "version", "outcome"],
            registry=self.registry,
        )
        self.shared_calls = Histogram(
            "switchyard_gateway_backend_call_requests",
            "Requests each classify or NER backend call carried: more than one when requests"
            " waited for a call and shared it.",
            ["service"],
            buckets=(1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )
        self.routing_revision = Gauge(
            "switchyard_gateway_routing_revision",
            "Revision of the routing tables this replica routes with.",
            registry=self.registry,
        )
