"""The classifier: the machine's raw limit against the service as ``switchyard up`` runs
it (over gRPC and through the gateway, the eager and the int8 version), and against the
simplest batcher that works, all in one run.

This machine's speed drifts by tens of percent from one minute to the next, so every
served window comes right after a short raw window at the raw limit's threads, batch
size and loops, and each ratio is the median over the rounds of (served) / (raw just
before it).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from bench import grpc_floor, raw
from bench.gateway_process import create_key, start_gateway
from bench.http_client import ConnectionPool
from bench.load import LoadResult, closed_loop
from bench.process_cpu import children_cpu_seconds, process_cpu_seconds
from bench.raw import TEXTS
from bench.shipped import EAGER, INT8, sentiment_versions
from services.classifier.model import SequenceClassifier
from services.classifier.onnx_model import OnnxSequenceClassifier
from services.runtime.settings import DEFAULT_REGISTRY
from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc
from switchyard.processes import free_port, service_process
from switchyard.redis_server import local_redis

CONCURRENCY = ((1, 100), (8, 300), (32, 800), (64, 1000))
"""Concurrent callers, and calls per window."""
RAW_WINDOW_S = 1.5
"""Seconds of the raw loop measured before each served window."""
SIZES = (8, 16, 32, 64)
"""Batch sizes of the raw limits."""
ONNX_FP32 = f"{EAGER}-onnx"
"""The float32 export that ``models prepare`` keeps beside its reference (int8 is
quantized from it): measured raw only, since no shipped version serves it."""

Call = Callable[[int], Awaitable[object]]
System = tuple[Call, ConnectionPool | None]


def grpc_caller(stub: classifier_pb2_grpc.ClassifierServiceAsyncStub, version: str) -> Call:
    async def call(number: int) -> object:
        text = TEXTS[number % len(TEXTS)]
        request = pb.ClassifyRequest(model="sentiment", version=version, texts=[text])
        return await stub.Classify(request, timeout=60)

    return call


def http_caller(pool: ConnectionPool, path: str, headers: dict[str, str]) -> Call:
    """POSTs of one text each through a keep-alive pool (the cheapest client here)."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    requests = []
    for text in TEXTS:
        body = json.dumps({"text": text}).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{pool.port}\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)

    async def call(number: int) -> object:
        return await pool.request(requests[number % len(requests)])

    return call


async def window(system: System, concurrency: int, total: int) -> LoadResult:
    call, pool = system
    if pool is not None:
        await pool.refill(concurrency)
    return await closed_loop(call, concurrency, total)


def summary(results: list[tuple[LoadResult, float]]) -> dict[str, float]:
    """Median figures of a system's windows at one concurrency, each window paired with
    the raw limit measured just before it."""
    return {
        "texts_per_s": statistics.median(r.per_second for r, _ in results),
        "ratio_to_eager_raw": statistics.median(r.per_second / limit for r, limit in results),
        "p50_ms": statistics.median(r.percentile_ms(0.5) for r, _ in results),
        "p99_ms": statistics.median(r.percentile_ms(0.99) for r, _ in results),
    }


@contextmanager
def minimal_batcher(model_dir: Path, threads: int) -> Iterator[int]:
    """The baseline batcher on a free port (its port)."""
    port = free_port()
    command = [sys.executable, "-m", "bench.minimal_batcher", str(model_dir), str(port)]
    process = subprocess.Popen([*command, str(threads)])
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


async def wait_answering(system: System, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            await window(system, 1, 1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def run(models_dir: Path, quick: bool, torch_threads: int) -> dict[str, object]:
    del torch_threads  # every system here runs with the threads it ships with
    eager = SequenceClassifier(str(models_dir / "sentiment" / EAGER))
    eager.warm_up()

    def eager_at(threads: int) -> raw.BatchFn:
        raw.torch_threads(threads)
        return eager.predict_batch

    limit = raw.best_limit(eager_at, raw.thread_counts(), SIZES, 1.5)
    figures: dict[str, object] = {
        "cores": raw.cores(),
        "eager_raw_limit": vars(limit),
        **onnx_limits(models_dir),
        "served_batching": sentiment_versions()[EAGER].model_dump(
            include={"max_batch_size", "max_queue_delay_ms", "max_queue_size"}
        ),
    }
    rounds = 2 if quick else 5
    figures.update(asyncio.run(_rounds(models_dir, eager_at, limit, rounds)))
    figures["grpc_floor"] = asyncio.run(_floor(eager_at, limit, figures, 2 if quick else 3))
    return figures


async def _floor(
    predictors: raw.Predictors, limit: raw.RawLimit, figures: dict[str, object], rounds: int
) -> dict[str, object]:
    """The gRPC floor per call (``bench/grpc_floor.py``), each window right after a raw
    one, and the ceiling it puts on the eager and int8 versions' served ratios."""
    int8 = figures.get("onnx_int8_raw_limit")
    int8_speedup = int8["texts_per_s"] / limit.texts_per_s if isinstance(int8, dict) else None
    costs: list[grpc_floor.CallCost] = []
    ceilings: dict[str, list[float]] = {EAGER: [], INT8: []}
    port, cores = free_port(), raw.cores()
    with grpc_floor.empty_classifier(port) as pid:
        for _ in range(rounds):
            reference = raw.limit_rate(predictors, limit, RAW_WINDOW_S)
            cost = await grpc_floor.call_cost(
                f"127.0.0.1:{port}", pid, lambda stub: grpc_caller(stub, EAGER)
            )
            costs.append(cost)
            ceilings[EAGER].append(grpc_floor.ceiling(cores, reference, cost) / reference)
            if int8_speedup is not None:
                model = reference * int8_speedup
                ceilings[INT8].append(grpc_floor.ceiling(cores, model, cost) / reference)
    return {
        **grpc_floor.medians(costs),
        "ceiling_ratio_to_eager_raw": {
            version: statistics.median(found) for version, found in ceilings.items() if found
        },
    }


def onnx_predictors(folder: Path) -> raw.Predictors:
    """ONNX Runtime sessions of ``folder``, one per thread count (loops side by side
    share the one-thread session: its passes run on the calling thread)."""
    sessions: dict[int, OnnxSequenceClassifier] = {}
    lock = threading.Lock()

    def at(threads: int) -> raw.BatchFn:
        with lock:
            if threads not in sessions:
                sessions[threads] = OnnxSequenceClassifier(str(folder), threads=threads)
        return sessions[threads].predict_batch

    return at


def onnx_limits(models_dir: Path) -> dict[str, object]:
    """The raw limits of the float32 export and the int8 version under ONNX Runtime, the
    best of thread counts (a batch split into that many one-thread runs, as served: see
    services/runtime/onnx_runtime.py), batch sizes and loops side by side."""
    found: dict[str, object] = {}
    for name, version in (("onnx_fp32_raw_limit", ONNX_FP32), ("onnx_int8_raw_limit", INT8)):
        folder = models_dir / "sentiment" / version
        if not (folder / "model.onnx").is_file():
            continue
        limit = raw.best_limit(onnx_predictors(folder), raw.thread_counts(), SIZES, 1.5)
        found[name] = vars(limit)
    return found


async def _rounds(
    models_dir: Path, predictors: raw.Predictors, limit: raw.RawLimit, rounds: int
) -> dict[str, object]:
    """Every served system, measured in turn after a raw window, ``rounds`` times."""
    versions = [v for v in (EAGER, INT8) if v in sentiment_versions()]
    with (
        tempfile.TemporaryDirectory() as scratch,
        local_redis(Path(scratch) / "redis") as redis,
        minimal_batcher(models_dir / "sentiment" / EAGER, raw.cores()) as baseline_port,
        service_process("classifier", DEFAULT_REGISTRY, torch_threads="0") as service,
    ):
        key = await create_key(redis.url)
        unused = f"127.0.0.1:{free_port()}"
        gateway = start_gateway(service.address, unused, key, redis_url=redis.url, cache_ttl_s="0")
        try:
            async with grpc.aio.insecure_channel(service.address) as channel:
                stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
                systems: dict[str, System] = {}
                for version in versions:
                    systems[f"grpc_{version}"] = (grpc_caller(stub, version), None)
                    pool = ConnectionPool("127.0.0.1", gateway.port)
                    auth = {"Authorization": f"Bearer {key}", "X-Model-Version": version}
                    systems[f"gateway_{version}"] = (http_caller(pool, "/v1/classify", auth), pool)
                baseline = ConnectionPool("127.0.0.1", baseline_port)
                systems["minimal_batcher"] = (http_caller(baseline, "/classify", {}), baseline)
                await wait_answering(systems["minimal_batcher"])
                for system in systems.values():  # warm every path
                    await window(system, 8, 64)
                return await _measure(systems, service.process.pid, predictors, limit, rounds)
        finally:
            gateway.terminate()


async def _measure(
    systems: dict[str, System],
    pid: int,
    predictors: raw.Predictors,
    limit: raw.RawLimit,
    rounds: int,
) -> dict[str, object]:
    """Each served window right after a raw one, so that every ratio divides two figures
    measured seconds apart (this machine's speed drifts from one minute to the next)."""
    results: dict[str, dict[int, list[tuple[LoadResult, float]]]] = {n: {} for n in systems}
    raws: list[float] = []
    c1_ratios: list[float] = []
    singles: list[float] = []
    cpu: list[tuple[float, float]] = []
    for _ in range(rounds):
        for concurrency, total in CONCURRENCY:
            for name, system in systems.items():
                reference = raw.limit_rate(predictors, limit, RAW_WINDOW_S)
                raws.append(reference)
                latency_window = name == f"grpc_{EAGER}" and concurrency == 1
                single = raw.best_single_ms(predictors) if latency_window else 0.0
                before = process_cpu_seconds(pid), children_cpu_seconds(pid)
                result = await window(system, concurrency, total)
                results[name].setdefault(concurrency, []).append((result, reference))
                if latency_window:
                    singles.append(single)
                    c1_ratios.append(result.percentile_ms(0.5) / single)
                if name == f"grpc_{EAGER}" and concurrency == 32:
                    front = process_cpu_seconds(pid) - before[0]
                    workers = children_cpu_seconds(pid) - before[1]
                    cpu.append((1000 * front / total, 1000 * workers / total))
    figures: dict[str, object] = {
        "eager_raw_texts_per_s_windows": [min(raws), statistics.median(raws), max(raws)],
        "eager_raw_single_text_ms": statistics.median(singles),
    }
    for name, by_concurrency in results.items():
        figures[name] = {f"c{c}": summary(found) for c, found in by_concurrency.items()}
    figures["grpc_c1_p50_over_single_forward"] = statistics.median(c1_ratios)
    # In process mode the gRPC process never runs the model and this is the runtime's
    # overhead; in thread mode (as shipped) it holds the forward passes too.
    figures["grpc_process_cpu_ms_per_request_c32"] = statistics.median(c[0] for c in cpu)
    figures["model_worker_cpu_ms_per_request_c32"] = statistics.median(c[1] for c in cpu)
    return figures
