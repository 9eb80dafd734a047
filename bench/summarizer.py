"""The summarizer: time to first piece and tokens per second of each runtime (transformers,
the reference, the same weights with prompt lookup, and CTranslate2), with one and two
threads, measured directly in this process, over the service's gRPC stream, and through
the gateway's Server-Sent Events; then, per prompt, how much the speed-ups depend on what
is asked (``bench.summarizer_texts``).

This machine's speed drifts by tens of percent from one minute to the next, so every way
of generating runs once per round, in an order that rotates from round to round; the
figures are medians over rounds, and each speed-up is the median of the per-round ratios
of each runtime to transformers measured the same way, with the same threads.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import grpc
import torch

from bench import summarizer_texts
from bench.shipped import LOOKUP, lookup_tokens
from services.summarizer.ctranslate2_model import Ctranslate2Summarizer, intra_threads
from services.summarizer.generation import GenerationJob, GenerationOptions
from services.summarizer.model import CausalLmSummarizer
from switchyard.processes import GatewayProcess, free_port, service_process
from switchyard.summarizer.v1 import summarizer_pb2 as pb
from switchyard.summarizer.v1 import summarizer_pb2_grpc

TEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
    "from 1887 to 1889 as the centrepiece of the 1889 World's Fair."
)
MAX_NEW_TOKENS = 64
VERSIONS = {
    "transformers": "v1",
    "transformers-lookup": LOOKUP,
    "ctranslate2": "v1-ct2",
    "ctranslate2-int8": "v1-ct2-int8",
}
CONVERTED = ("ctranslate2", "ctranslate2-int8")
"""The runtimes whose versions prepare converts into folders of their own."""
FASTER = ("transformers-lookup", *CONVERTED)
"""The runtimes compared with transformers, the reference."""

Measure = Callable[[], tuple[float, float]]
"""One generation: (seconds to the first piece, generated tokens per second)."""


def _direct(model: CausalLmSummarizer | Ctranslate2Summarizer, torch_threads: int) -> Measure:
    def once() -> tuple[float, float]:
        # transformers reads torch's thread count at every call; CTranslate2 has its own.
        torch.set_num_threads(torch_threads)
        first: list[float] = []
        started = time.perf_counter()

        def on_piece(piece: str) -> None:
            if not first:
                first.append(time.perf_counter() - started)

        usage = model.generate(
            GenerationJob(TEXT, GenerationOptions(max_new_tokens=MAX_NEW_TOKENS), on_piece)
        )
        return first[0], usage.generated_tokens / (time.perf_counter() - started)

    return once


def _over_grpc(stub: summarizer_pb2_grpc.SummarizerServiceStub, version: str) -> Measure:
    request = pb.SummarizeStreamRequest(
        text=TEXT, version=version, options=pb.GenerationOptions(max_new_tokens=MAX_NEW_TOKENS)
    )

    def once() -> tuple[float, float]:
        started = time.perf_counter()
        first = 0.0
        generated = 0
        for message in stub.SummarizeStream(request, timeout=300):
            if message.text and not first:
                first = time.perf_counter() - started
            if message.HasField("usage"):
                generated = message.usage.generated_tokens
        return first, generated / (time.perf_counter() - started)

    return once


def _over_sse(gateway: GatewayProcess, key: str, version: str) -> Measure:
    from bench.http_client import HttpConnection

    query = urllib.parse.urlencode({"text": TEXT, "max_new_tokens": MAX_NEW_TOKENS})
    request = (
        f"GET /v1/summarize/stream?{query} HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n"
        f"Authorization: Bearer {key}\r\nX-Model-Version: {version}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()

    async def stream() -> tuple[float, float]:
        connection = await HttpConnection.open("127.0.0.1", gateway.port)
        try:
            started = time.perf_counter()
            first, done = await connection.sse(request)
            if done["version"] != version:
                raise RuntimeError(f"asked for {version}, answered by {done['version']}")
            return first, done["usage"]["generated_tokens"] / (time.perf_counter() - started)
        finally:
            await connection.close()

    return lambda: asyncio.run(stream())


def _start_gateway(summarizer: str, redis_url: str, key: str) -> GatewayProcess:
    """A gateway in front of the summarizer (the other services on closed ports), the cache
    off; ready once a summary streams through it."""
    closed = f"127.0.0.1:{free_port()}"
    gateway = GatewayProcess(
        {"classifier": closed, "ner": closed, "summarizer": summarizer},
        redis_url=redis_url,
        cache_ttl_s="0",
    )
    try:
        gateway.wait_listening()
        probe = _over_sse(gateway, key, VERSIONS["ctranslate2"])
        deadline = time.monotonic() + 120
        while True:
            try:
                probe()
                return gateway
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the gateway has not listed the summarizer's versions yet
    except BaseException:
        gateway.terminate()
        raise


def _rounds(measures: dict[str, Measure], rounds: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
    names = list(measures)
    for name in names:
        measures[name]()  # warm every path once
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(measures[name]())
    return results


def _figures(results: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "ttft_ms": 1000 * statistics.median(r[0] for r in runs),
            "tokens_per_s": statistics.median(r[1] for r in runs),
        }
        for name, runs in results.items()
    }


def _speedups(
    results: dict[str, list[tuple[float, float]]], transformers: str, ctranslate2: str
) -> dict[str, float]:
    """A runtime against transformers, round by round: how many times shorter its time
    to first piece, and how many times higher its tokens per second."""
    pairs = list(zip(results[transformers], results[ctranslate2], strict=True))
    return {
        "ttft_speedup": statistics.median(t[0] / c[0] for t, c in pairs),
        "tokens_per_s_speedup": statistics.median(c[1] / t[1] for t, c in pairs),
    }


def run(models_dir: Path, quick: bool, torch_threads: int) -> dict[str, object]:
    """Every runtime, thread count and path in alternation; the shipped service (both
    versions in one process) serves the gRPC and SSE sides."""
    from bench.gateway_process import create_key
    from switchyard.redis_server import local_redis

    rounds = 3 if quick else 7
    # The threads the shipped service gives CTranslate2 (from its torch threads setting).
    shipped_threads = intra_threads(torch_threads)
    folder = models_dir / "summarizer"
    transformers = CausalLmSummarizer(str(folder / VERSIONS["transformers"]))
    lookup = CausalLmSummarizer(str(folder / VERSIONS["transformers"]), lookup_tokens())
    measures: dict[str, Measure] = {}
    for threads in (1, 2):
        measures[f"direct transformers {threads}t"] = _direct(transformers, threads)
        measures[f"direct transformers-lookup {threads}t"] = _direct(lookup, threads)
        for runtime in CONVERTED:
            converted = Ctranslate2Summarizer(str(folder / VERSIONS[runtime]), threads)
            measures[f"direct {runtime} {threads}t"] = _direct(converted, threads)
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        redis_server = stack.enter_context(local_redis(Path(scratch) / "redis"))
        key = asyncio.run(create_key(redis_server.url))
        for threads in (1, 2):
            service = stack.enter_context(service_process("summarizer", torch_threads=str(threads)))
            channel = stack.enter_context(grpc.insecure_channel(service.address))
            stub = summarizer_pb2_grpc.SummarizerServiceStub(channel)
            for runtime, version in VERSIONS.items():
                measures[f"grpc {runtime} {threads}t"] = _over_grpc(stub, version)
            if threads == shipped_threads:
                gateway = _start_gateway(service.address, redis_server.url, key)
                stack.callback(gateway.terminate)
                for runtime, version in VERSIONS.items():
                    measures[f"sse {runtime} {threads}t"] = _over_sse(gateway, key, version)
        results = _rounds(measures, rounds)
    speedups = {
        f"{path} {runtime} {threads}t": _speedups(
            results, f"{path} transformers {threads}t", f"{path} {runtime} {threads}t"
        )
        for path in ("direct", "grpc", "sse")
        for runtime in FASTER
        for threads in (1, 2)
        if f"{path} transformers {threads}t" in results
    }
    figures = _figures(results)
    shipped = f"{shipped_threads}t"
    return {
        # The default version (CTranslate2) as `switchyard up` runs it, direct and over gRPC.
        "direct_ttft_ms": figures[f"direct ctranslate2 {shipped}"]["ttft_ms"],
        "grpc_ttft_ms": figures[f"grpc ctranslate2 {shipped}"]["ttft_ms"],
        "sse_ttft_ms": figures[f"sse ctranslate2 {shipped}"]["ttft_ms"],
        "direct_tokens_per_s": figures[f"direct ctranslate2 {shipped}"]["tokens_per_s"],
        "grpc_tokens_per_s": figures[f"grpc ctranslate2 {shipped}"]["tokens_per_s"],
        "sse_tokens_per_s": figures[f"sse ctranslate2 {shipped}"]["tokens_per_s"],
        "speedups": speedups,
        "runs": figures,
        "rounds": rounds,
        "max_new_tokens": MAX_NEW_TOKENS,
        "by_prompt": summarizer_texts.run(models_dir),
    }
