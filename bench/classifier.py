"""The classifier: raw forward passes versus the service over gRPC, batching on and off,
and the service's own CPU cost per request outside the forward pass.

This machine's speed drifts by tens of percent from one minute to the next, so every
served figure is paired with a raw figure measured just before it, and ratios are the
median over several such pairs.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import grpc

from bench.load import LoadResult, closed_loop
from services.classifier.model import SequenceClassifier
from services.runtime.registry import load_registry
from services.runtime.settings import DEFAULT_REGISTRY
from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc
from switchyard.processes import ServiceProcess, service_process, write_classifier_registry

TEXTS = [
    "I love this, it is wonderful.",
    "This was a terrible waste of money.",
    "Not bad at all, I would buy it again.",
    "The service was slow and the food was cold.",
]
V1 = {"model": "sentiment", "version": "v1"}
NO_BATCHING = {"max_batch_size": 1, "max_queue_delay_ms": 0, "max_queue_size": 512}


def shipped_batching() -> dict[str, object]:
    """The batch settings sentiment v1 ships with, queue made deep enough for the load."""
    spec = load_registry(DEFAULT_REGISTRY, "classifier").models["sentiment"].versions["v1"]
    return {
        "max_batch_size": spec.max_batch_size,
        "max_queue_delay_ms": spec.max_queue_delay_ms,
        "max_queue_size": 512,
    }


def raw_rate(classifier: SequenceClassifier, size: int, seconds: float) -> float:
    """Texts per second of forward passes of ``size`` texts in a tight loop."""
    batch = [TEXTS[i % len(TEXTS)] for i in range(size)]
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        classifier.predict_batch(batch)
        done += size
    return done / (time.perf_counter() - started)


def best_batch_size(classifier: SequenceClassifier, sizes: tuple[int, ...]) -> int:
    return max(sizes, key=lambda size: raw_rate(classifier, size, 2.0))


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int) -> float:
    """CPU time of the live child processes of ``pid`` (the model workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    total += process_cpu_seconds(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return total


async def served(service: ServiceProcess, concurrency: int, total: int) -> LoadResult:
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)

        async def call(number: int) -> object:
            request = pb.ClassifyRequest(texts=[TEXTS[number % len(TEXTS)]])
            return await stub.Classify(request, timeout=60)

        return await closed_loop(call, concurrency, total)


def paired(
    classifier: SequenceClassifier,
    best: int,
    service: ServiceProcess,
    concurrency: int,
    total: int,
    rounds: int,
) -> dict[str, float]:
    """Median figures over ``rounds`` of (raw window, served window) pairs."""
    ratios, rates, p50s, p99s, front_cpu, worker_cpu = [], [], [], [], [], []
    asyncio.run(served(service, concurrency, 4 * concurrency))  # warm the path
    for _ in range(rounds):
        raw = raw_rate(classifier, best, 2.0)
        pid = service.process.pid
        front_before, worker_before = process_cpu_seconds(pid), children_cpu_seconds(pid)
        result = asyncio.run(served(service, concurrency, total))
        front_cpu.append(1000 * (process_cpu_seconds(pid) - front_before) / result.calls)
        worker_cpu.append(1000 * (children_cpu_seconds(pid) - worker_before) / result.calls)
        ratios.append(result.per_second / raw)
        rates.append(result.per_second)
        p50s.append(result.percentile_ms(0.5))
        p99s.append(result.percentile_ms(0.99))
    return {
        "ratio_to_raw": statistics.median(ratios),
        "texts_per_s": statistics.median(rates),
        "p50_ms": statistics.median(p50s),
        "p99_ms": statistics.median(p99s),
        # The gRPC process never runs the model: all of its CPU is the runtime's overhead
        # (gRPC, protobuf, batching, handing batches to the worker).
        "grpc_process_cpu_ms_per_request": statistics.median(front_cpu),
        "model_worker_cpu_ms_per_request": statistics.median(worker_cpu),
    }


def run(models_dir: Path, quick: bool, torch_threads: int) -> dict[str, object]:
    rounds = 3 if quick else 5
    classifier = SequenceClassifier(str(models_dir / "sentiment" / "v1"))
    classifier.warm_up()
    best = best_batch_size(classifier, (8, 16, 32, 64))
    figures: dict[str, object] = {"raw_best_batch": best, "served_batching": shipped_batching()}
    with tempfile.TemporaryDirectory() as scratch:
        on = write_classifier_registry(
            Path(scratch) / "on.toml", models_dir, {"v1": shipped_batching()}
        )
        off = write_classifier_registry(Path(scratch) / "off.toml", models_dir, {"v1": NO_BATCHING})
        with service_process("classifier", on, torch_threads=str(torch_threads)) as service:
            for concurrency, total in ((1, 150), (8, 400), (32, 1000)):
                figures[f"served_c{concurrency}"] = paired(
                    classifier, best, service, concurrency, total, rounds
                )
        speedups = []
        with (
            service_process("classifier", on, torch_threads=str(torch_threads)) as batched,
            service_process("classifier", off, torch_threads=str(torch_threads)) as unbatched,
        ):
            for _ in range(rounds):
                with_batching = asyncio.run(served(batched, 32, 600)).per_second
                without = asyncio.run(served(unbatched, 32, 300)).per_second
                speedups.append(with_batching / without)
        figures["batching_speedup_c32"] = statistics.median(speedups)
        figures["raw_texts_per_s_last"] = raw_rate(classifier, best, 2.0)
    return figures
