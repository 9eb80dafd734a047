"""What traces cost the gateway: its CPU time per ``POST /v1/classify`` at concurrency 32,
with traces off (as shipped) and on (every span exported over OTLP/gRPC to a local
receiver in this process, which parses what it gets to count the spans).

Two gateways run side by side in front of the same instant echo classifier (so that the
figure is the gateway's, not a model's) and the same real redis-server; only one has the
``OTEL_*`` environment. The two sides run in alternating windows (which goes first
alternates too) and the ratio is the median over the pairs of windows of on / off.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as collector_pb

from bench.echo_backend import echo_backend
from bench.gateway import ConnectionPool, classify_body, create_key, post_json, start_gateway
from bench.load import closed_loop
from bench.process_cpu import process_cpu_seconds
from bench.raw import TEXTS
from switchyard.processes import GatewayProcess, free_port
from switchyard.redis_server import local_redis

CONCURRENCY = 32
TARGET = {"ratio_on_off": 1.15}  # at most
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class SpanCounter:
    """Counts the spans an OTLP/gRPC exporter sends (any thread)."""

    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def export(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        request = collector_pb.ExportTraceServiceRequest.FromString(raw)
        count = sum(
            len(scope.spans) for spans in request.resource_spans for scope in spans.scope_spans
        )
        with self._lock:
            self.spans += count
        return b""  # an empty ExportTraceServiceResponse: all accepted


@contextmanager
def otlp_sink() -> Iterator[tuple[str, SpanCounter]]:
    """An OTLP/gRPC trace receiver on a free port: its endpoint, and its count."""
    counter = SpanCounter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(counter.export)
    service, method = EXPORT_METHOD.lstrip("/").split("/")
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {method: handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", counter
    finally:
        server.stop(None)


def traced_gateway(classifier: str, key: str, endpoint: str, redis_url: str) -> GatewayProcess:
    """A gateway that inherits an OTEL_* environment exporting to ``endpoint``."""
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    saved = {name: os.environ.get(name) for name in otel}
    os.environ.update(otel)
    try:
        return start_gateway(
            classifier, f"127.0.0.1:{free_port()}", key, redis_url=redis_url, cache_ttl_s="0"
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def compare(
    off: GatewayProcess, on: GatewayProcess, key: str, total: int, rounds: int
) -> dict[str, list[float]]:
    pools = {
        side: ConnectionPool("127.0.0.1", gateway.port)
        for side, gateway in (("off", off), ("on", on))
    }
    bodies = {
        side: [post_json(gateway.port, "/v1/classify", classify_body(t), key) for t in TEXTS]
        for side, gateway in (("off", off), ("on", on))
    }
    figures: dict[str, list[float]] = {"off": [], "on": []}

    async def warm(side: str) -> None:
        pool, requests = pools[side], bodies[side]
        await pool.refill(CONCURRENCY)

        async def call(number: int) -> object:
            return await pool.request(requests[number % len(requests)])

        await closed_loop(call, CONCURRENCY, 4 * CONCURRENCY)

    async def window(side: str, gateway: GatewayProcess) -> None:
        pool, requests = pools[side], bodies[side]
        await pool.refill(CONCURRENCY)

        async def call(number: int) -> object:
            return await pool.request(requests[number % len(requests)])

        before = process_cpu_seconds(gateway.process.pid)
        result = await closed_loop(call, CONCURRENCY, total)
        spent = process_cpu_seconds(gateway.process.pid) - before
        figures[side].append(1000 * spent / result.calls)

    try:
        for side in ("off", "on"):  # warm both paths
            await warm(side)
        for number in range(rounds):
            order = (("off", off), ("on", on)) if number % 2 == 0 else (("on", on), ("off", off))
            for side, gateway in order:
                await window(side, gateway)
    finally:
        for pool in pools.values():
            await pool.close()
    return figures


def run(quick: bool) -> dict[str, object]:
    total, rounds = (600, 4) if quick else (2000, 8)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis = stack.enter_context(local_redis(workdir))
        key = asyncio.run(create_key(redis.url))
        classifier = stack.enter_context(echo_backend())
        endpoint, counter = stack.enter_context(otlp_sink())
        off = start_gateway(
            classifier, f"127.0.0.1:{free_port()}", key, redis_url=redis.url, cache_ttl_s="0"
        )
        stack.callback(off.terminate)
        on = traced_gateway(classifier, key, endpoint, redis.url)
        stack.callback(on.terminate)
        figures = asyncio.run(compare(off, on, key, total, rounds))
        on.terminate()  # its last spans are exported as it stops
        spans = counter.spans
    ratios = [b / a for a, b in zip(figures["off"], figures["on"], strict=True)]
    requests_on = rounds * total + 4 * CONCURRENCY + 1
    return {
        "concurrency": CONCURRENCY,
        "requests_per_window": total,
        "rounds": rounds,
        "gateway_cpu_ms_per_request_off": statistics.median(figures["off"]),
        "gateway_cpu_ms_per_request_on": statistics.median(figures["on"]),
        "ratio_on_off": statistics.median(ratios),
        "ratio_on_off_by_round": ratios,
        "spans_exported_per_request": spans / requests_on,
        "target": TARGET,
    }
