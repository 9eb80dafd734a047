"""What traces cost the gateway: its CPU time per ``POST /v1/classify`` at concurrency 32,
with traces off (as shipped) and on (every span exported over OTLP/gRPC to a local
receiver in this process, which parses what it gets to count the spans).

Gateways run side by side in front of the same instant echo classifier (so that the
figure is the gateway's, not a model's) and the same real redis-server: one without the
``OTEL_*`` environment, one exporting every span, and one keeping one trace in ten
(``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, what a busy deployment would run).
Each round runs one window per gateway, in an order that rotates from round to round,
and each ratio is the median over the rounds of that round's ratio to the untraced one.
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
from bench.gateway_process import create_key, start_gateway
from bench.http_client import ConnectionPool, classify_body, post_json
from bench.load import closed_loop
from bench.process_cpu import process_cpu_seconds
from bench.raw import TEXTS
from switchyard.processes import GatewayProcess, free_port
from switchyard.redis_server import local_redis
from switchyard.spans.grpc_export import EXPORT_METHOD

CONCURRENCY = 32
TARGET = {"ratio_on_off": 1.15}  # at most


class SpanCounter:
    """Counts the spans an OTLP/gRPC exporter sends (any thread). What arrives is kept
    as it came and parsed only when counted, after the measured windows: parsing as it
    arrives would put this receiver's work on the same two cores as the gateway it
    measures, only while a traced gateway runs, and inflate that gateway's CPU time."""

    def __init__(self) -> None:
        self._received: list[bytes] = []
        self._lock = threading.Lock()

    def export(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self._received.append(raw)
        return b""  # an empty ExportTraceServiceResponse: all accepted

    @property
    def spans(self) -> int:
        with self._lock:
            received = list(self._received)
        return sum(
            len(scope.spans)
            for raw in received
            for spans in collector_pb.ExportTraceServiceRequest.FromString(raw).resource_spans
            for scope in spans.scope_spans
        )


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


def traced_gateway(
    classifier: str, key: str, endpoint: str, redis_url: str, **otel: str
) -> GatewayProcess:
    """A gateway that inherits an OTEL_* environment exporting to ``endpoint`` (and
    ``otel``'s variables)."""
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        **otel,
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
    gateways: dict[str, GatewayProcess], key: str, total: int, rounds: int
) -> dict[str, list[float]]:
    """Gateway CPU milliseconds per request of each side, one window per side per round
    (the order rotating from round to round)."""
    pools = {side: ConnectionPool("127.0.0.1", g.port) for side, g in gateways.items()}
    bodies = {
        side: [post_json(g.port, "/v1/classify", classify_body(t), key) for t in TEXTS]
        for side, g in gateways.items()
    }
    figures: dict[str, list[float]] = {side: [] for side in gateways}

    async def window(side: str, measured: bool) -> None:
        pool, requests = pools[side], bodies[side]
        await pool.refill(CONCURRENCY)

        async def call(number: int) -> object:
            return await pool.request(requests[number % len(requests)])

        pid = gateways[side].process.pid
        before = process_cpu_seconds(pid)
        result = await closed_loop(call, CONCURRENCY, total if measured else 4 * CONCURRENCY)
        if measured:
            figures[side].append(1000 * (process_cpu_seconds(pid) - before) / result.calls)

    sides = list(gateways)
    try:
        for side in sides:  # warm every path
            await window(side, measured=False)
        for number in range(rounds):
            shift = number % len(sides)
            for side in sides[shift:] + sides[:shift]:
                await window(side, measured=True)
    finally:
        for pool in pools.values():
            await pool.close()
    return figures


SAMPLED_RATIO = "0.1"
"""The sampled side keeps one trace in ten (``parentbased_traceidratio``)."""


def run(quick: bool) -> dict[str, object]:
    total, rounds = (600, 3) if quick else (500, 45)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis = stack.enter_context(local_redis(workdir))
        key = asyncio.run(create_key(redis.url))
        classifier = stack.enter_context(echo_backend())
        endpoint, every = stack.enter_context(otlp_sink())
        sampled_endpoint, sampled_count = stack.enter_context(otlp_sink())
        gateways = {
            "off": start_gateway(
                classifier, f"127.0.0.1:{free_port()}", key, redis_url=redis.url, cache_ttl_s="0"
            )
        }
        stack.callback(gateways["off"].terminate)
        gateways["on"] = traced_gateway(classifier, key, endpoint, redis.url)
        stack.callback(gateways["on"].terminate)
        gateways["sampled"] = traced_gateway(
            classifier,
            key,
            sampled_endpoint,
            redis.url,
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=SAMPLED_RATIO,
        )
        stack.callback(gateways["sampled"].terminate)
        figures = asyncio.run(compare(gateways, key, total, rounds))
        for side in ("on", "sampled"):
            gateways[side].terminate()  # its last spans are exported as it stops
    requests = rounds * total + 4 * CONCURRENCY + 1
    off = figures["off"]
    on_ratios = [b / a for a, b in zip(off, figures["on"], strict=True)]
    sampled_ratios = [b / a for a, b in zip(off, figures["sampled"], strict=True)]
    return {
        "concurrency": CONCURRENCY,
        "requests_per_window": total,
        "rounds": rounds,
        "gateway_cpu_ms_per_request_off": statistics.median(off),
        "gateway_cpu_ms_per_request_on": statistics.median(figures["on"]),
        "gateway_cpu_ms_per_request_sampled": statistics.median(figures["sampled"]),
        "ratio_on_off": statistics.median(on_ratios),
        "ratio_on_off_by_round": on_ratios,
        "ratio_sampled_off": statistics.median(sampled_ratios),
        "sampled_ratio": float(SAMPLED_RATIO),
        "spans_exported_per_request": every.spans / requests,
        "spans_exported_per_request_sampled": sampled_count.spans / requests,
        "target": TARGET,
    }
