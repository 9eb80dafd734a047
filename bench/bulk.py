"""Bulk NDJSON (``POST /v1/classify/bulk``): its throughput against the classifier's own,
and the memory of the gateway and of the service as bodies grow.

Throughput. The same texts, one per call, sent straight to the classifier service
(unary ``Classify`` over gRPC, closed loop at concurrency 32) and as one bulk request of
as many lines through the gateway (which keeps 64 texts in flight on ``ClassifyStream``),
its body written and its answer read at once (``bench.bulk_client``). The two alternate,
which goes first alternating too, as this machine's speed drifts by tens of percent; the
ratio of texts per second is taken per pair of windows, and its median reported. Target:
at least 0.9.

Memory, target: a bulk body grows the gateway's and the service's RSS by at most 50 MB,
and a larger body by no more (within ``FLAT_SLACK_MB``: two equal runs of a
Python process differ by a few MB, from its allocator's arenas and pages). The RSS of
each process (a service with its model workers, if any) is read from /proc every 50 ms
during the request; growth is the peak over the RSS read before it, after a warm-up
bulk. The peak in each quarter of the request is reported too: growth that goes on
quarter after quarter grows with the body, growth that stops does not.

- The gateway, in front of ``bench.echo_backend`` (answers at once, in a thread of this
  process), a new gateway for each body: bodies of 10 MB and 100 MB (2 and 20 with
  ``--quick``) streamed, and one of 10 MB (2) sent whole by httpx before it reads a byte
  of the answer, whose answers wait in the spill buffer (on disk past 1 MiB). The gateway
  spends ~0.3 ms of CPU per line (mostly grpc.aio's write and read of each stream
  message, then the answer line's JSON and HTTP chunk), ~3,000 lines/s here, so 100 MB of
  50-byte lines (two million) would take it eleven minutes: the lines carry texts of
  ``GATEWAY_TEXT_CHARS`` characters, 100 MB being ~190,000 of them, 10 MB ~19,000.
- The service: the real classifier answers ~350 texts/s here, so 10 MB of short lines
  (~190,000) would take it nine minutes and 100 MB hours. It is measured through a
  gateway with bodies of 1 MB and 4 MB of the bench's short texts (0.2 and 0.8 with
  ``--quick``), ~16,000 and ~65,000 lines, one after the other over one baseline, read
  once the service has answered ``SERVICE_WARM_TEXTS`` texts (the throughput windows,
  then a warm-up bulk): before that its RSS still rises with any traffic, unary alike.
  The service's RSS once SERVING is reported too (``service_rss_mb_at_start``), and the
  gateway's growth at the model's pace.
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import httpx

from bench.bulk_client import (
    PATH,
    BulkResult,
    RssSampler,
    body_chunks,
    bulk_request,
    lines_of,
)
from bench.echo_backend import echo_backend
from bench.gateway_process import create_key, start_gateway
from bench.load import closed_loop
from bench.process_cpu import process_cpu_seconds
from bench.raw import TEXTS
from bench.shipped import shipped_batching
from switchyard.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from switchyard.processes import (
    GatewayProcess,
    ServiceProcess,
    free_port,
    service_process,
    write_classifier_registry,
)
from switchyard.redis_server import local_redis

TARGETS = {"throughput_ratio": 0.9, "rss_growth_mb": 50.0}
FLAT_SLACK_MB = 5.0
CONCURRENCY = 32
MB = 1_000_000
GATEWAY_TEXT_CHARS = 500
"""Texts of the gateway's bodies: short enough for a paragraph, long enough that 100 MB
of them takes minutes rather than ten."""
WARM_BYTES = 256 * 1024
SERVICE_WARM_TEXTS = 24_000
"""The service's RSS rises by some 20 MB over its first ~20,000 texts, whether they come
one per unary call or in a bulk stream (its allocator settling), then stays: its baseline
is read once it has answered this many."""
SERVICE_MIN_WARM_LINES = 4096
SETTLE_S = 0.5
"""A pause before the baseline RSS is read, for the warm-up's memory to be returned."""
STREAM_TIMEOUT_S = "3600"


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def compare_throughput(
    gateway: GatewayProcess, service: ServiceProcess, key: str, texts: int, rounds: int
) -> dict[str, Any]:
    """``rounds`` pairs of windows of ``texts`` texts, direct and in one bulk request: the
    medians, and each pair's ratio."""
    figures: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)

        async def direct(number: int) -> object:
            request = classifier_pb2.ClassifyRequest(texts=[TEXTS[number % len(TEXTS)]])
            return await stub.Classify(request, timeout=60)

        async def direct_per_s() -> float:
            return (await closed_loop(direct, CONCURRENCY, texts)).per_second

        async def bulk_per_s() -> float:
            before = process_cpu_seconds(gateway.process.pid)
            result = await bulk_request(gateway.port, key, lines_of(texts))
            _check(result, texts)
            cpu = process_cpu_seconds(gateway.process.pid) - before
            add("gateway_cpu_ms_per_line", 1000 * cpu / texts)
            return result.answered / result.seconds

        await closed_loop(direct, CONCURRENCY, 4 * CONCURRENCY)  # warm both paths
        _check(await bulk_request(gateway.port, key, lines_of(256)), 256)
        for number in range(rounds):
            if number % 2 == 0:
                on_direct, on_bulk = await direct_per_s(), await bulk_per_s()
            else:
                on_bulk = await bulk_per_s()
                on_direct = await direct_per_s()
            add("direct_texts_per_s", on_direct)
            add("bulk_texts_per_s", on_bulk)
            add("throughput_ratio", on_bulk / on_direct)
    medians: dict[str, Any] = {name: _median(values) for name, values in figures.items()}
    medians["throughput_ratio_by_round"] = [round(r, 3) for r in figures["throughput_ratio"]]
    return medians


def _check(result: BulkResult, lines: int) -> None:
    if result.answered != lines or result.failed or result.lines_sent != lines:
        raise RuntimeError(f"{lines} lines sent, answered: {result}")


def measure(
    groups: dict[str, int], send: Callable[[], BulkResult], baseline: dict[str, float]
) -> dict[str, Any]:
    """One bulk request with the RSS of ``groups`` sampled: its figures and each group's
    peak growth (MB) over ``baseline``."""
    with RssSampler(groups) as sampler:
        result = send()
    _check(result, result.lines_sent)
    figures: dict[str, Any] = {}
    for name in groups:
        figures[f"{name}_rss_growth_mb"] = round(sampler.peak_mb(name) - baseline[name], 1)
        quarters = sampler.quarters_mb(name)
        figures[f"{name}_rss_growth_mb_by_quarter"] = [
            round(q - baseline[name], 1) for q in quarters
        ]
    return {
        **figures,
        "body_mb": round(result.body_bytes / MB, 2),
        "lines": result.lines_sent,
        "lines_per_s": round(result.lines_sent / result.seconds),
        "seconds": round(result.seconds, 1),
        "rss_samples": len(sampler.samples[next(iter(groups))]),
    }


def settled_rss(groups: dict[str, int]) -> dict[str, float]:
    time.sleep(SETTLE_S)
    return RssSampler(groups).now_mb()


def streamed(port: int, key: str, chunks: Iterator[tuple[bytes, int]]) -> BulkResult:
    return asyncio.run(bulk_request(port, key, chunks))


def whole(url: str, key: str, size: int, pad: int) -> BulkResult:
    """A body of ``size`` bytes sent whole by httpx, then its answer read."""
    parts = list(body_chunks(size, pad))
    body = b"".join(chunk for chunk, _ in parts)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    started = time.perf_counter()
    with httpx.Client(timeout=float(STREAM_TIMEOUT_S)) as http:
        reply = http.post(url + PATH, content=body, headers=headers)
    reply.raise_for_status()
    answers = [json.loads(raw) for raw in reply.content.splitlines()]
    seconds = time.perf_counter() - started
    answered = sum(1 for answer in answers if answer.get("labels"))
    lines = sum(count for _, count in parts)
    return BulkResult(lines, len(body), answered, len(answers) - answered, seconds)


def gateway_memory(redis_url: str, key: str, sizes_mb: tuple[int, int]) -> dict[str, Any]:
    """The gateway's RSS growth in front of the echo backend: each body streamed, then the
    smaller one sent whole, each in a new gateway."""
    pad = GATEWAY_TEXT_CHARS - min(len(t) for t in TEXTS)
    cases: list[tuple[str, int]] = [(f"streamed_{mb}mb", mb) for mb in sizes_mb]
    cases.append((f"whole_{sizes_mb[0]}mb", sizes_mb[0]))
    figures: dict[str, Any] = {"text_chars": GATEWAY_TEXT_CHARS}
    with echo_backend() as backend:
        for name, mb in cases:
            gateway = start_gateway(
                backend,
                f"127.0.0.1:{free_port()}",
                key,
                redis_url=redis_url,
                cache_ttl_s="0",
                stream_timeout_s=STREAM_TIMEOUT_S,
            )
            try:
                streamed(gateway.port, key, body_chunks(WARM_BYTES, pad))
                groups = {"gateway": gateway.process.pid}
                baseline = settled_rss(groups)

                def send(name: str = name, mb: int = mb, port: int = gateway.port) -> BulkResult:
                    if name.startswith("whole"):
                        return whole(f"http://127.0.0.1:{port}", key, mb * MB, pad)
                    return streamed(port, key, body_chunks(mb * MB, pad))

                figures[name] = {
                    "gateway_rss_mb": round(baseline["gateway"], 1),
                    **measure(groups, send, baseline),
                }
            finally:
                gateway.terminate()
    return figures


def service_memory(
    gateway: GatewayProcess,
    service: ServiceProcess,
    key: str,
    sizes_mb: tuple[float, float],
    warm_lines: int,
) -> dict[str, Any]:
    """The service's (and the gateway's) RSS growth with bodies of the bench's short
    texts, one after the other, over one baseline read after ``warm_lines`` more texts."""
    groups = {"service": service.process.pid, "gateway": gateway.process.pid}
    _check(streamed(gateway.port, key, lines_of(warm_lines)), warm_lines)
    baseline = settled_rss(groups)
    figures: dict[str, Any] = {f"{name}_rss_mb": round(v, 1) for name, v in baseline.items()}
    figures["warm_up_lines"] = warm_lines
    for mb in sizes_mb:
        chunks = body_chunks(int(mb * MB))
        figures[f"streamed_{mb}mb"] = measure(
            groups, functools.partial(streamed, gateway.port, key, chunks), baseline
        )
    return figures


def _flat(small: dict[str, Any], large: dict[str, Any], name: str) -> bool:
    limit = TARGETS["rss_growth_mb"]
    growth: tuple[float, float] = (small[f"{name}_rss_growth_mb"], large[f"{name}_rss_growth_mb"])
    return max(growth) <= limit and growth[1] <= growth[0] + FLAT_SLACK_MB


def run(models_dir: Path, quick: bool, torch_threads: int) -> dict[str, object]:
    rounds, texts = (2, 1500) if quick else (3, 3000)
    gateway_mb = (2, 20) if quick else (10, 100)
    service_mb = (0.2, 0.8) if quick else (1.0, 4.0)
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        redis_server = stack.enter_context(local_redis(Path(scratch) / "redis"))
        key = asyncio.run(create_key(redis_server.url))
        on_gateway = gateway_memory(redis_server.url, key, gateway_mb)
        registry = write_classifier_registry(
            Path(scratch) / "classifier.toml", models_dir, {"v1": shipped_batching()}
        )
        classifier = stack.enter_context(
            service_process("classifier", registry, torch_threads=str(torch_threads))
        )
        gateway = start_gateway(
            classifier.address,
            f"127.0.0.1:{free_port()}",
            key,
            redis_url=redis_server.url,
            cache_ttl_s="0",
            stream_timeout_s=STREAM_TIMEOUT_S,
        )
        stack.callback(gateway.terminate)
        at_start = RssSampler({"service": classifier.process.pid}).now_mb()["service"]
        throughput = asyncio.run(compare_throughput(gateway, classifier, key, texts, rounds))
        seen = 2 * rounds * texts + 4 * CONCURRENCY + 256
        warm_lines = max(SERVICE_MIN_WARM_LINES, SERVICE_WARM_TEXTS - seen)
        on_service = service_memory(gateway, classifier, key, service_mb, warm_lines)
        on_service["service_rss_mb_at_start"] = round(at_start, 1)
    small, large = (f"streamed_{mb}mb" for mb in gateway_mb)
    whole_case = on_gateway[f"whole_{gateway_mb[0]}mb"]
    service_cases = [on_service[f"streamed_{mb}mb"] for mb in service_mb]
    figures: dict[str, object] = {
        "throughput_ratio": throughput["throughput_ratio"],
        "targets_met": {
            "throughput_ratio": throughput["throughput_ratio"] >= TARGETS["throughput_ratio"],
            "gateway_rss_flat": _flat(on_gateway[small], on_gateway[large], "gateway"),
            "gateway_rss_whole_body": whole_case["gateway_rss_growth_mb"]
            <= TARGETS["rss_growth_mb"],
            "service_rss_flat": _flat(service_cases[0], service_cases[1], "service"),
        },
        "targets": {**TARGETS, "flat_slack_mb": FLAT_SLACK_MB},
        "throughput": {**throughput, "rounds": rounds, "texts": texts, "concurrency": CONCURRENCY},
        "gateway_memory": on_gateway,
        "service_memory": on_service,
    }
    return figures
