"""Batch jobs beside interactive traffic: the latency of interactive ``POST /v1/classify``
calls through the gateway with no job running and with a batch job running, and the job's
own pace meanwhile.

A job's lines go through the same gateway and the same classifier at low priority: the
service's batcher takes job items only when no interactive item waits, with one job batch
in flight at most. The target: the p50 of interactive calls with a job running within
1.2x of the p50 without one. A job's batch also waits until the model has been idle a
moment (``low_priority_idle_s``) and holds a few items (``low_priority_max_batch``): under
steady interactive load it yields the model entirely, and it takes the model whenever
interactive traffic leaves it idle (its pace alone is measured too).

Windows with and without a job alternate (which goes first alternates too), as this
machine's speed drifts; each figure is the median over the rounds.
"""

from __future__ import annotations

import asyncio
import io
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.gateway_process import create_key, start_gateway
from bench.http_client import ConnectionPool, post_json
from bench.load import closed_loop
from bench.raw import TEXTS
from bench.shipped import shipped_batching
from switchyard.processes import free_port, service_process, write_classifier_registry
from switchyard.redis_server import local_redis

TARGET_P50_RATIO = 1.2
"""At most: interactive p50 with a job running over the p50 without one."""
ALONE_S = 10.0
"""How long the job's pace alone is measured."""
JOB_LINES = 200_000
"""More than any window lets the job answer: it runs through the whole window."""


def job_file(lines: int) -> bytes:
    return b"".join(
        json.dumps(
            {
                "custom_id": f"j{i}",
                "method": "POST",
                "url": "/v1/classify",
                "body": {"text": TEXTS[i % len(TEXTS)]},
            }
        ).encode()
        + b"\n"
        for i in range(lines)
    )


class Jobs:
    """Starts a batch job through the gateway's API and reads how far it got."""

    def __init__(self, url: str, key: str, content: bytes) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )
        upload = self.http.post(
            "/v1/files",
            files={"file": ("bench.jsonl", io.BytesIO(content))},
            data={"purpose": "batch"},
        )
        upload.raise_for_status()
        self.file_id = upload.json()["id"]

    def start(self) -> str:
        """A new batch, once it answers its first lines."""
        body = {
            "input_file_id": self.file_id,
            "endpoint": "/v1/classify",
            "completion_window": "24h",
        }
        created = self.http.post("/v1/batches", json=body)
        created.raise_for_status()
        batch_id: str = created.json()["id"]
        while self.done(batch_id) == 0:
            time.sleep(0.05)
        return batch_id

    def done(self, batch_id: str) -> int:
        counts = self.http.get(f"/v1/batches/{batch_id}").json()["request_counts"]
        return int(counts["completed"]) + int(counts["failed"])

    def stop(self, batch_id: str) -> None:
        self.http.post(f"/v1/batches/{batch_id}/cancel").raise_for_status()
        while self.http.get(f"/v1/batches/{batch_id}").json()["status"] not in (
            "cancelled",
            "completed",
        ):
            time.sleep(0.05)


async def interactive(
    pool: ConnectionPool, requests: list[bytes], concurrency: int, calls: int
) -> dict[str, float]:
    await pool.refill(concurrency)

    async def call(number: int) -> object:
        return await pool.request(requests[number % len(requests)])

    result = await closed_loop(call, concurrency, calls)
    return {
        "p50_ms": result.percentile_ms(0.5),
        "p99_ms": result.percentile_ms(0.99),
        "per_s": result.per_second,
    }


async def compare(
    gateway_port: int, jobs: Jobs, key: str, concurrency: int, calls: int, rounds: int
) -> dict[str, float]:
    body = [json.dumps({"text": t}) for t in TEXTS]
    requests = [post_json(gateway_port, "/v1/classify", b, key) for b in body]
    pool = ConnectionPool("127.0.0.1", gateway_port)
    figures: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    try:
        await interactive(pool, requests, concurrency, calls)  # warm the path
        for number in range(rounds):
            order = ("without", "with") if number % 2 == 0 else ("with", "without")
            got: dict[str, dict[str, float]] = {}
            for side in order:
                if side == "without":
                    got[side] = await interactive(pool, requests, concurrency, calls)
                    continue
                batch_id = await asyncio.to_thread(jobs.start)
                before = await asyncio.to_thread(jobs.done, batch_id)
                started = time.perf_counter()
                got[side] = await interactive(pool, requests, concurrency, calls)
                answered = await asyncio.to_thread(jobs.done, batch_id) - before
                got[side]["job_lines_per_s"] = answered / (time.perf_counter() - started)
                await asyncio.to_thread(jobs.stop, batch_id)
            for side, result in got.items():
                for name, value in result.items():
                    add(f"{side}_job_{name}", value)
            add("p50_ratio", got["with"]["p50_ms"] / got["without"]["p50_ms"])
            add("p99_ratio", got["with"]["p99_ms"] / got["without"]["p99_ms"])
        # The job alone: the pace it keeps when no interactive call needs the model.
        batch_id = await asyncio.to_thread(jobs.start)
        before, started = await asyncio.to_thread(jobs.done, batch_id), time.perf_counter()
        await asyncio.sleep(ALONE_S)
        answered = await asyncio.to_thread(jobs.done, batch_id) - before
        add("job_alone_lines_per_s", answered / (time.perf_counter() - started))
        await asyncio.to_thread(jobs.stop, batch_id)
    finally:
        await pool.close()
    return {name: statistics.median(values) for name, values in figures.items()}


def run(models_dir: Path, quick: bool, torch_threads: int) -> dict[str, object]:
    rounds = 3 if quick else 5
    calls = 300 if quick else 600
    concurrency = 4
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        redis_server = stack.enter_context(local_redis(Path(scratch) / "redis"))
        key = asyncio.run(create_key(redis_server.url))
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
            files_dir=str(Path(scratch) / "files"),
            jobs_poll_s="0.1",
            jobs_max_requests=str(JOB_LINES),
        )
        stack.callback(gateway.terminate)
        jobs = Jobs(gateway.url, key, job_file(JOB_LINES))
        figures: dict[str, Any] = asyncio.run(
            compare(gateway.port, jobs, key, concurrency, calls, rounds)
        )
    figures["concurrency"] = concurrency
    figures["rounds"] = rounds
    figures["calls_per_window"] = calls
    figures["target_p50_ratio"] = TARGET_P50_RATIO
    figures["target_met"] = figures["p50_ratio"] <= TARGET_P50_RATIO
    return figures
