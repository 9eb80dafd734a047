"""The gateway: the same classifier requests sent directly over gRPC and through the
gateway's ``POST /v1/classify`` (HTTP/1.1 keep-alive), and a summary's time to first
token over the gRPC stream and through ``GET /v1/summarize/stream`` (SSE); what
authentication and the rate limit cost per request (``auth_cost``, from the gateway's own
``Server-Timing``); and cached answers against uncached ones (``cache``).

The gateway runs as it ships: a real redis-server holds the API key every request sends
(an enterprise key with limits far above the load), the rate limits and the prediction
cache. The comparison with the direct side runs with the cache off, so that every
request reaches the model as the direct ones do; the cache phase uses a second gateway
with the cache on.

This machine's speed drifts by tens of percent from one minute to the next, so the two
sides run in alternating windows (which side goes first alternates too) and every
comparison is the median over the pairs of windows of a per-pair difference or ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import grpc

from bench.gateway_costs import auth_cost, compare_cache
from bench.gateway_process import create_key, start_gateway
from bench.http_client import ConnectionPool, HttpConnection, classify_body, post_json
from bench.load import LoadResult, closed_loop
from bench.process_cpu import process_cpu_seconds
from bench.raw import TEXTS
from bench.shipped import shipped_batching
from bench.summarizer import TEXT as SUMMARY_TEXT
from switchyard.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from switchyard.processes import (
    GatewayProcess,
    ServiceProcess,
    service_process,
    write_classifier_registry,
)
from switchyard.redis_server import local_redis
from switchyard.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

SSE_MAX_NEW_TOKENS = 8
TARGETS = {
    "c1_p50_overhead_ms": 2.0,  # at most
    "gateway_cpu_ms_per_request": 1.0,  # at most, at every concurrency
    "c32_throughput_ratio": 0.85,  # at least
    "sse_ttft_overhead_ms": 10.0,  # at most
    "auth_limit_cache_p50_ms": 1.0,  # at most: auth + rate limit (+ cache lookup) per request
}
BEFORE_AUTH = (
    "README (Gateway table): 1.08 ms gateway CPU per request at concurrency 32 in the"
    " previous full run, before API keys, rate limits and the cache"
)


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def compare_classify(
    gateway: GatewayProcess,
    service: ServiceProcess,
    key: str,
    concurrency: int,
    total: int,
    rounds: int,
) -> dict[str, float]:
    """``rounds`` pairs of windows of ``total`` calls, direct and through the gateway."""
    requests = [post_json(gateway.port, "/v1/classify", classify_body(t), key) for t in TEXTS]
    pool = ConnectionPool("127.0.0.1", gateway.port)
    figures: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)

        async def direct(number: int) -> object:
            request = classifier_pb2.ClassifyRequest(texts=[TEXTS[number % len(TEXTS)]])
            return await stub.Classify(request, timeout=60)

        async def through(number: int) -> object:
            return await pool.request(requests[number % len(requests)])

        async def window(call: Callable[[int], Awaitable[object]]) -> tuple[LoadResult, float]:
            """The window's result and this process's (the client's) CPU ms per call."""
            cpu = time.process_time()
            result = await closed_loop(call, concurrency, total)
            return result, 1000 * (time.process_time() - cpu) / result.calls

        try:
            for call in (direct, through):  # warm both paths, open the connections
                await closed_loop(call, concurrency, 4 * concurrency)
            pid = gateway.process.pid

            async def gateway_window() -> tuple[LoadResult, float, float]:
                """As ``window``, plus the gateway's CPU seconds in the window."""
                await pool.refill(concurrency)
                before = process_cpu_seconds(pid)
                result, client = await window(through)
                return result, client, process_cpu_seconds(pid) - before

            for number in range(rounds):
                if number % 2 == 0:
                    on_grpc, client_grpc = await window(direct)
                    on_http, client_http, gateway_cpu = await gateway_window()
                else:
                    on_http, client_http, gateway_cpu = await gateway_window()
                    on_grpc, client_grpc = await window(direct)
                for side, result in (("direct", on_grpc), ("gateway", on_http)):
                    add(f"{side}_p50_ms", result.percentile_ms(0.5))
                    add(f"{side}_p99_ms", result.percentile_ms(0.99))
                    add(f"{side}_per_s", result.per_second)
                add("p50_overhead_ms", on_http.percentile_ms(0.5) - on_grpc.percentile_ms(0.5))
                add("p99_overhead_ms", on_http.percentile_ms(0.99) - on_grpc.percentile_ms(0.99))
                add("throughput_ratio", on_http.per_second / on_grpc.per_second)
                add("gateway_cpu_ms_per_request", 1000 * gateway_cpu / on_http.calls)
                add("client_cpu_ms_per_request_direct", client_grpc)
                add("client_cpu_ms_per_request_gateway", client_http)
        finally:
            await pool.close()
    return {key: _median(values) for key, values in figures.items()}


async def compare_ttft(
    gateway: GatewayProcess, service: ServiceProcess, key: str, runs: int
) -> dict[str, float]:
    """Time to first token of the same summary over gRPC and over SSE, alternating."""
    query = urllib.parse.urlencode({"text": SUMMARY_TEXT, "max_new_tokens": SSE_MAX_NEW_TOKENS})
    sse_request = (
        f"GET /v1/summarize/stream?{query} HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n"
        f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    grpc_request = summarizer_pb2.SummarizeStreamRequest(
        text=SUMMARY_TEXT,
        options=summarizer_pb2.GenerationOptions(max_new_tokens=SSE_MAX_NEW_TOKENS),
    )
    connection = await HttpConnection.open("127.0.0.1", gateway.port)
    # Seconds to the first piece at the client, and the part of them spent outside the
    # model: the client's time minus the service's own time to first token. The model's
    # share (~0.4 s of prefill) drifts with the machine's speed; the rest is transport.
    over_grpc: list[tuple[float, float]] = []
    over_sse: list[tuple[float, float]] = []
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = summarizer_pb2_grpc.SummarizerServiceStub(channel)

        async def grpc_ttft() -> tuple[float, float]:
            started = time.perf_counter()
            first = 0.0
            in_model = -1.0
            async for message in stub.SummarizeStream(grpc_request, timeout=300):
                if message.text and not first:
                    first = time.perf_counter() - started
                if message.HasField("usage"):
                    in_model = message.usage.time_to_first_token.ToNanoseconds() / 1e9
            if not first or in_model < 0:
                raise RuntimeError("the gRPC stream ended without text or without usage")
            return first, first - in_model

        async def sse_ttft() -> tuple[float, float]:
            first, done = await connection.sse(sse_request)
            return first, first - done["usage"]["time_to_first_token_ms"] / 1000

        try:
            await grpc_ttft()  # warm both paths
            await sse_ttft()
            for number in range(runs):
                if number % 2 == 0:
                    over_grpc.append(await grpc_ttft())
                over_sse.append(await sse_ttft())
                if number % 2 == 1:
                    over_grpc.append(await grpc_ttft())
        finally:
            await connection.close()
    pairs = list(zip(over_grpc, over_sse, strict=True))
    return {
        "grpc_ttft_ms": 1000 * _median([g[0] for g in over_grpc]),
        "sse_ttft_ms": 1000 * _median([s[0] for s in over_sse]),
        "ttft_overhead_ms": 1000 * _median([s[0] - g[0] for g, s in pairs]),
        "grpc_outside_model_ms": 1000 * _median([g[1] for g in over_grpc]),
        "sse_outside_model_ms": 1000 * _median([s[1] for s in over_sse]),
        "outside_model_overhead_ms": 1000 * _median([s[1] - g[1] for g, s in pairs]),
        "runs": runs,
        "max_new_tokens": SSE_MAX_NEW_TOKENS,
    }


def run(models_dir: Path, quick: bool, torch_threads: int) -> dict[str, object]:
    rounds = 3 if quick else 10
    windows = {1: 150 if quick else 300, 32: 600 if quick else 1500}
    ttft_runs = 3 if quick else 10
    auth_calls = 300
    cache_rounds = 1 if quick else 3
    cache_calls = 100
    threads = str(torch_threads)
    per_concurrency: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        redis_server = stack.enter_context(local_redis(Path(scratch) / "redis"))
        key = asyncio.run(create_key(redis_server.url))
        registry = write_classifier_registry(
            Path(scratch) / "classifier.toml", models_dir, {"v1": shipped_batching()}
        )
        classifier = stack.enter_context(
            service_process("classifier", registry, torch_threads=threads)
        )
        summarizer = stack.enter_context(service_process("summarizer", torch_threads=threads))
        # The cache off: every request reaches the model, as the direct ones do.
        gateway = start_gateway(
            classifier.address, summarizer.address, key, redis_url=redis_server.url, cache_ttl_s="0"
        )
        stack.callback(gateway.terminate)
        for concurrency, total in windows.items():
            per_concurrency[concurrency] = asyncio.run(
                compare_classify(gateway, classifier, key, concurrency, total, rounds)
            )
        sse = asyncio.run(compare_ttft(gateway, summarizer, key, ttft_runs))
        auth = asyncio.run(auth_cost(gateway, key, auth_calls))
        gateway.terminate()
        # The cache on, as shipped (its default time to live).
        cached = start_gateway(
            classifier.address, summarizer.address, key, redis_url=redis_server.url
        )
        stack.callback(cached.terminate)
        cache = asyncio.run(compare_cache(cached, key, cache_calls, cache_rounds))
    c1, c32 = per_concurrency[1], per_concurrency[32]
    auth["gateway_cpu_ms_per_request_c1_comparison"] = c1["gateway_cpu_ms_per_request"]
    auth["gateway_cpu_ms_per_request_c32_comparison"] = c32["gateway_cpu_ms_per_request"]
    auth_figures: dict[str, object] = {**auth, "before_auth": BEFORE_AUTH}
    figures: dict[str, object] = {
        "c1_p50_overhead_ms": c1["p50_overhead_ms"],
        "c1_p99_overhead_ms": c1["p99_overhead_ms"],
        "c32_p50_overhead_ms": c32["p50_overhead_ms"],
        "c32_p99_overhead_ms": c32["p99_overhead_ms"],
        "c1_throughput_ratio": c1["throughput_ratio"],
        "c32_throughput_ratio": c32["throughput_ratio"],
        "gateway_cpu_ms_per_request_c1": c1["gateway_cpu_ms_per_request"],
        "gateway_cpu_ms_per_request_c32": c32["gateway_cpu_ms_per_request"],
        "sse_ttft_overhead_ms": sse["ttft_overhead_ms"],
        "sse_ttft_overhead_outside_model_ms": sse["outside_model_overhead_ms"],
        "auth_limit_p50_ms": auth["auth_limit_p50_ms"],
        "auth_limit_cache_p50_ms_miss": cache["auth_limit_cache_p50_ms_miss"],
        "auth_limit_cache_p50_ms_hit": cache["auth_limit_cache_p50_ms_hit"],
        "cache_hit_p50_ms": cache["hit_p50_ms"],
        "cache_miss_p50_ms": cache["miss_p50_ms"],
        "cache_hit_miss_p50_ratio": cache["hit_miss_p50_ratio"],
    }
    auth_target = TARGETS["auth_limit_cache_p50_ms"]
    figures["targets_met"] = {
        "c1_p50_overhead_ms": c1["p50_overhead_ms"] <= TARGETS["c1_p50_overhead_ms"],
        "gateway_cpu_ms_per_request": max(
            c1["gateway_cpu_ms_per_request"], c32["gateway_cpu_ms_per_request"]
        )
        <= TARGETS["gateway_cpu_ms_per_request"],
        "c32_throughput_ratio": c32["throughput_ratio"] >= TARGETS["c32_throughput_ratio"],
        "sse_ttft_overhead_ms": sse["ttft_overhead_ms"] <= TARGETS["sse_ttft_overhead_ms"],
        "sse_ttft_overhead_outside_model_ms": sse["outside_model_overhead_ms"]
        <= TARGETS["sse_ttft_overhead_ms"],
        "auth_limit_p50_ms": auth["auth_limit_p50_ms"] <= auth_target,
        "auth_limit_cache_p50_ms_miss": cache["auth_limit_cache_p50_ms_miss"] <= auth_target,
        "auth_limit_cache_p50_ms_hit": cache["auth_limit_cache_p50_ms_hit"] <= auth_target,
    }
    figures["targets"] = TARGETS
    figures["c1"] = {**c1, "rounds": rounds, "calls_per_window": windows[1]}
    figures["c32"] = {**c32, "rounds": rounds, "calls_per_window": windows[32]}
    figures["sse"] = sse
    figures["auth_cost"] = auth_figures
    figures["cache"] = cache
    return figures
