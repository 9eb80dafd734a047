"""Prometheus metrics of one model service process, in a registry of its own."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.runtime.registry import VersionSpec

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class CallRecord:
    """What a servicer learns about a call that the metrics need (set once resolved)."""

    model: str = ""
    version: str = ""


current_call: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar(
    "current_call", default=None
)


def note_model(model: str, version: str) -> None:
    """Record which model version answers the current call, for its metrics labels."""
    record = current_call.get()
    if record is not None:
        record.model = model
        record.version = version


class GenerationUsage(Protocol):
    """The figures of one finished generation that the metrics record."""

    generated_tokens: int
    finish_reason: str
    tokens_after_cancel: int
    time_to_first_token_s: float


QueueDepths = Callable[[], Iterable[tuple[str, str, int, int]]]
"""(model, version, interactive items waiting, low-priority items waiting) per version."""


class _QueueDepthCollector(Collector):
    def __init__(self, depths: QueueDepths) -> None:
        self._depths = depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        # A job's backlog has a gauge of its own: it waits for idle capacity by design,
        # so it must not read as the load that ``switchyard_queue_depth`` signals.
        gauge = GaugeMetricFamily(
            "switchyard_queue_depth",
            "Interactive items accepted and waiting to run, per model version.",
            labels=["model", "version"],
        )
        low = GaugeMetricFamily(
            "switchyard_low_priority_queue_depth",
            "Low-priority (batch job) items accepted and waiting to run, per model version.",
            labels=["model", "version"],
        )
        for model, version, depth, low_depth in self._depths():
            gauge.add_metric([model, version], depth)
            low.add_metric([model, version], low_depth)
        yield gauge
        yield low


class ServiceMetrics:
    """Request, latency, batch and queue metrics of one service process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "switchyard_grpc_requests",
            "gRPC calls answered, by method, model, version and status code.",
            ["method", "model", "version", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "switchyard_grpc_request_duration_seconds",
            "Time from the start of a gRPC call to its answer.",
            ["method", "model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "switchyard_batch_size",
            "Items per forward pass.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_duration = Histogram(
            "switchyard_batch_duration_seconds",
            "Time one forward pass (with tokenization) took.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.low_priority_batch_size = Histogram(
            "switchyard_low_priority_batch_size",
            "Items per forward pass of low-priority (batch job) items; each such pass is"
            " counted in switchyard_batch_size too.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.dropped = Counter(
            "switchyard_dropped_items",
            "Queued items dropped before running, by reason.",
            ["model", "version", "reason"],
            registry=self.registry,
        )
        self.generated_tokens = Counter(
            "switchyard_generated_tokens",
            "Tokens generated, per model version.",
            ["model", "version"],
            registry=self.registry,
        )
        self.generations = Counter(
            "switchyard_generations",
            "Generations ended, by finish reason (stop, length, cancelled).",
            ["model", "version", "finish_reason"],
            registry=self.registry,
        )
        self.tokens_after_cancel = Counter(
            "switchyard_tokens_after_cancel",
            "Tokens generated after the generation's call was cancelled (ideally 0 or 1).",
            ["model", "version"],
            registry=self.registry,
        )
        self.generations_running = Gauge(
            "switchyard_generations_running",
            "Generations running on the worker now (cancelled ones until they stop).",
            ["model", "version"],
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "switchyard_time_to_first_token_seconds",
            "Time from the start of a generation to its first token.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._http: tuple[WSGIServer, threading.Thread] | None = None

    def observe_call(self, method: str, record: CallRecord, code: str, seconds: float) -> None:
        self.requests.labels(method, record.model, record.version, code).inc()
        self.latency.labels(method, record.model, record.version).observe(seconds)

    def generation_started(self, model: str, version: str) -> None:
        """A generation left the queue for the worker; called from the worker thread."""
        self.generations_running.labels(model, version).inc()

    def generation_finished(self, model: str, version: str, usage: GenerationUsage) -> None:
        """Record one generation's figures; called from the worker thread."""
        self.generations_running.labels(model, version).dec()
        self.generated_tokens.labels(model, version).inc(usage.generated_tokens)
        self.generations.labels(model, version, usage.finish_reason).inc()
        self.tokens_after_cancel.labels(model, version).inc(usage.tokens_after_cancel)
        if usage.generated_tokens:
            self.time_to_first_token.labels(model, version).observe(usage.time_to_first_token_s)

    def watch_queues(self, depths: QueueDepths) -> None:
        self.registry.register(_QueueDepthCollector(depths))

    def batch_observer(self, spec: VersionSpec) -> VersionBatchObserver:
        return VersionBatchObserver(self, spec.model, spec.version)

    def serve_http(self, host: str, port: int) -> int:
        """Serve /metrics on a thread; returns the bound port (``port`` 0 picks one)."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = (server, thread)
        return int(server.server_port)

    def stop_http(self) -> None:
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._http = None


class VersionBatchObserver:
    """Feeds one model version's batch figures into the service metrics."""

    def __init__(self, metrics: ServiceMetrics, model: str, version: str) -> None:
        self._size = metrics.batch_size.labels(model, version)
        self._low_size = metrics.low_priority_batch_size.labels(model, version)
        self._duration = metrics.batch_duration.labels(model, version)
        self._dropped = metrics.dropped
        self._labels = (model, version)

    def batch_ran(self, size: int, seconds: float, low_priority: bool) -> None:
        self._size.observe(size)
        self._duration.observe(seconds)
        if low_priority:
            self._low_size.observe(size)

    def items_dropped(self, reason: str, count: int) -> None:
        self._dropped.labels(*self._labels, reason).inc(count)
