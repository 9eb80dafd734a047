"""Streaming: the time to first token (TTFT) and the gaps between streamed pieces (whole
words, as the service sends them) of one greedy generation (64 new tokens) through the
gateway's two streaming routes and directly over gRPC, and how soon a stream cut short
resumes with ``Last-Event-ID``.

The summarizer runs its default version, the gateway and Redis as ``switchyard up``
starts them (a second gateway replica on the same Redis for the resume). Each route is
compared with the RPC it calls, with the same input: the OpenAI route (the ``openai``
SDK, a streamed chat completion) with ``Generate`` over the same conversation, the native
route (``POST /v1/summarize/stream``, httpx-sse) with ``SummarizeStream`` of the same
text. The two pairs generate different texts, so only each route's ratio to its own RPC
is a like-for-like figure. A resume drops a streamed chat completion after a few events
and sends it again from the first event's id, to the same replica or the other one: the
time to the first replayed event, against the TTFT of the request that started it.

This machine's speed drifts by tens of percent from one minute to the next, so every
path runs once per round, in an order that rotates from round to round; each figure is
a median over rounds, and each ratio the median of the per-round ratios.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
from openai import AsyncOpenAI

from bench.gateway_process import create_key
from bench.load import percentile
from bench.stream_paths import (
    MAX_NEW_TOKENS,
    RESUME_AFTER,
    SUMMARY_BODY,
    Resumed,
    Stream,
    cut_and_resume,
    grpc_generate,
    grpc_summarize,
    http_client,
    native_sse,
    openai_chat,
)
from switchyard.client.aio import AsyncSummarizerClient
from switchyard.processes import STARTUP_TIMEOUT_S, GatewayProcess, service_process
from switchyard.redis_server import local_redis

PAIRS = {"openai_chat": "grpc_generate", "native_sse": "grpc_summarize"}
"""Each gateway route and the RPC it calls."""
RESUMES = ("resume_same_replica", "resume_other_replica")

Results = dict[str, list[Stream | Resumed]]


def start_replica(summarizer: str, redis_url: str, key: str) -> GatewayProcess:
    """A gateway in front of the summarizer alone (no address for the other services, as
    ``switchyard up summarizer gateway`` gives it), settings as shipped; ready once a
    summary comes through it."""
    gateway = GatewayProcess(
        {"classifier": "", "ner": "", "summarizer": summarizer}, redis_url=redis_url
    )
    try:
        gateway.wait_listening()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        body = {**SUMMARY_BODY, "max_new_tokens": 1}
        headers = {"Authorization": f"Bearer {key}"}
        while True:
            try:
                reply = httpx.post(f"{gateway.url}/v1/summarize", json=body, headers=headers)
                if reply.status_code == 200:
                    return gateway
            except httpx.TransportError:
                pass  # not answering yet
            if gateway.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway never summarized: {gateway.logs[-20:]}")
            time.sleep(0.2)  # it has not listed the summarizer's versions yet
    except BaseException:
        gateway.terminate()
        raise


async def measure(
    replicas: tuple[GatewayProcess, GatewayProcess], summarizer: str, key: str, rounds: int
) -> Results:
    """Every path once to warm it, then ``rounds`` rounds in rotating order."""
    first, second = replicas
    async with (
        AsyncOpenAI(base_url=f"{first.url}/v1", api_key=key, max_retries=0) as openai,
        http_client(first.url, key) as http,
        AsyncSummarizerClient(summarizer) as grpc_client,
    ):
        paths: dict[str, Callable[[], Awaitable[Stream | Resumed]]] = {
            "openai_chat": lambda: openai_chat(openai),
            "native_sse": lambda: native_sse(http),
            "grpc_generate": lambda: grpc_generate(grpc_client),
            "grpc_summarize": lambda: grpc_summarize(grpc_client),
            "resume_same_replica": lambda: cut_and_resume(first.url, first.url, key),
            "resume_other_replica": lambda: cut_and_resume(first.url, second.url, key),
        }
        names = list(paths)
        for name in names:
            await paths[name]()
        results: Results = {name: [] for name in names}
        for number in range(rounds):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                results[name].append(await paths[name]())
    return results


def streams(results: Results, name: str) -> list[Stream]:
    return [s for s in results[name] if isinstance(s, Stream)]


def resumes(results: Results, name: str) -> list[Resumed]:
    return [r for r in results[name] if isinstance(r, Resumed)]


def ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def path_figures(runs: list[Stream]) -> dict[str, float]:
    """Medians over rounds of each generation's TTFT, median gap and p90 gap between
    pieces, and its number of pieces."""
    return {
        "ttft_ms": ms(statistics.median(s.ttft_s for s in runs)),
        "gap_p50_ms": ms(statistics.median(statistics.median(s.gaps_s) for s in runs)),
        "gap_p90_ms": ms(statistics.median(percentile(s.gaps_s, 0.9) for s in runs)),
        "pieces": statistics.median(len(s.arrivals) for s in runs),
    }


def ratio(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def overhead(route: list[Stream], rpc: list[Stream]) -> dict[str, float]:
    """The route over its RPC, round by round: TTFT, median gap and p90 gap."""
    pairs = list(zip(route, rpc, strict=True))
    return {
        "ttft_ratio": ratio([r.ttft_s / g.ttft_s for r, g in pairs]),
        "gap_p50_ratio": ratio(
            [statistics.median(r.gaps_s) / statistics.median(g.gaps_s) for r, g in pairs]
        ),
        "gap_p90_ratio": ratio(
            [percentile(r.gaps_s, 0.9) / percentile(g.gaps_s, 0.9) for r, g in pairs]
        ),
        "texts_differ": sum(r.text != g.text for r, g in pairs),
    }


def resume_figures(runs: list[Resumed]) -> dict[str, float]:
    """The reconnect's time to its first replayed event against the TTFT of the request
    that started the stream (a fresh request of the same route, in the same round)."""
    return {
        "resume_ms": ms(statistics.median(r.resume_s for r in runs)),
        "fresh_ttft_ms": ms(statistics.median(r.ttft_s for r in runs)),
        "resume_over_ttft": ratio([r.resume_s / r.ttft_s for r in runs]),
    }


def run(quick: bool, torch_threads: int) -> dict[str, object]:
    """Every path and both resumes in rotation, the summarizer as shipped."""
    rounds = 2 if quick else 12
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        redis_server = stack.enter_context(local_redis(Path(scratch) / "redis"))
        key = asyncio.run(create_key(redis_server.url))
        summarizer = stack.enter_context(
            service_process("summarizer", torch_threads=str(torch_threads))
        )
        replicas = []
        for _ in range(2):
            replica = start_replica(summarizer.address, redis_server.url, key)
            stack.callback(replica.terminate)
            replicas.append(replica)
        results = asyncio.run(measure((replicas[0], replicas[1]), summarizer.address, key, rounds))
    versions = {s.version for name in (*PAIRS, *PAIRS.values()) for s in streams(results, name)}
    paths = {name: path_figures(streams(results, name)) for name in (*PAIRS, *PAIRS.values())}
    over = {
        f"{route}_over_{rpc}": overhead(streams(results, route), streams(results, rpc))
        for route, rpc in PAIRS.items()
    }
    resumed = {name: resume_figures(resumes(results, name)) for name in RESUMES}
    return {
        "openai_ttft_ratio": over["openai_chat_over_grpc_generate"]["ttft_ratio"],
        "openai_gap_p50_ratio": over["openai_chat_over_grpc_generate"]["gap_p50_ratio"],
        "native_ttft_ratio": over["native_sse_over_grpc_summarize"]["ttft_ratio"],
        "native_gap_p50_ratio": over["native_sse_over_grpc_summarize"]["gap_p50_ratio"],
        "resume_same_replica_ms": resumed["resume_same_replica"]["resume_ms"],
        "resume_other_replica_ms": resumed["resume_other_replica"]["resume_ms"],
        "paths": paths,
        "overhead": over,
        "resume": resumed,
        "versions": sorted(versions),
        "rounds": rounds,
        "max_new_tokens": MAX_NEW_TOKENS,
        "resume_after_events": RESUME_AFTER,
    }
