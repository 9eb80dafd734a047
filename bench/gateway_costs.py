"""What the gateway's own steps cost per request: authentication and the rate limit
(``auth_cost``, from the gateway's ``Server-Timing``), and cached answers against
uncached ones (``compare_cache``); both at concurrency 1, through a real gateway."""

from __future__ import annotations

import statistics
import uuid

from bench.http_client import HttpConnection, classify_body, post_json, server_timing
from bench.load import LoadResult, closed_loop, percentile
from bench.process_cpu import process_cpu_seconds
from bench.raw import TEXTS
from switchyard.processes import GatewayProcess


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def auth_cost(gateway: GatewayProcess, key: str, calls: int) -> dict[str, float]:
    """``calls`` classify requests at concurrency 1 through a gateway with the cache off:
    the gateway's own ``Server-Timing`` for authentication and the rate limit (for an API
    key one step, ``auth``: the key checked and the request counted in one Redis script; a
    separate ``limit`` step where there is one), and the gateway's CPU per request."""
    requests = [post_json(gateway.port, "/v1/classify", classify_body(t), key) for t in TEXTS]
    connection = await HttpConnection.open("127.0.0.1", gateway.port)
    steps: list[dict[str, float]] = []

    async def call(number: int) -> object:
        headers, body = await connection.exchange(requests[number % len(requests)])
        steps.append(server_timing(headers))
        return body

    try:
        await closed_loop(call, 1, 8)  # warm the path
        steps.clear()
        pid = gateway.process.pid
        before = process_cpu_seconds(pid)
        result = await closed_loop(call, 1, calls)
        gateway_cpu = process_cpu_seconds(pid) - before
    finally:
        await connection.close()
    missing = sum(1 for s in steps if not {"auth", "backend"} <= s.keys())
    if missing:
        raise RuntimeError(f"{missing} answers lack an auth or backend step: {steps[:3]}")
    both = [s["auth"] + s.get("limit", 0.0) for s in steps]
    return {
        "auth_limit_p50_ms": percentile(both, 0.5),
        "auth_limit_p99_ms": percentile(both, 0.99),
        "backend_p50_ms": percentile([s["backend"] for s in steps], 0.5),
        "latency_p50_ms": result.percentile_ms(0.5),
        "gateway_cpu_ms_per_request_c1": 1000 * gateway_cpu / result.calls,
        "calls": calls,
    }


async def compare_cache(
    gateway: GatewayProcess, key: str, total: int, rounds: int
) -> dict[str, float]:
    """``rounds`` pairs of windows of ``total`` classify requests at concurrency 1 through
    a gateway with the cache on: hits (one text, cached by a warm-up request) and misses
    (a new text every request), which side goes first alternating."""
    hit_request = post_json(gateway.port, "/v1/classify", classify_body(TEXTS[1]), key)
    connection = await HttpConnection.open("127.0.0.1", gateway.port)
    pid = gateway.process.pid
    mismatches = {"hit": 0, "miss": 0}
    steps: dict[str, list[dict[str, float]]] = {"hit": [], "miss": []}
    figures: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    async def hit(number: int) -> object:
        return await send("hit", hit_request)

    async def miss(number: int) -> object:
        text = f"{TEXTS[number % len(TEXTS)]} {uuid.uuid4()}"
        return await send("miss", post_json(gateway.port, "/v1/classify", classify_body(text), key))

    async def send(kind: str, data: bytes) -> bytes:
        headers, body = await connection.exchange(data)
        if headers.get(b"x-cache") != (b"HIT" if kind == "hit" else b"MISS"):
            mismatches[kind] += 1
        steps[kind].append(server_timing(headers))
        return body

    async def window(kind: str) -> LoadResult:
        before = process_cpu_seconds(pid)
        result = await closed_loop(hit if kind == "hit" else miss, 1, total)
        gateway_cpu = process_cpu_seconds(pid) - before
        add(f"gateway_cpu_ms_per_request_{kind}", 1000 * gateway_cpu / total)
        add(f"{kind}_p50_ms", result.percentile_ms(0.5))
        add(f"{kind}_p99_ms", result.percentile_ms(0.99))
        return result

    try:
        await send("miss", hit_request)  # the warm-up request that caches the hits' text
        await closed_loop(miss, 1, 4)  # warm the miss path
        await closed_loop(hit, 1, 4)
        mismatches.update(hit=0, miss=0)
        for measured in steps.values():
            measured.clear()
        for number in range(rounds):
            order = ("hit", "miss") if number % 2 == 0 else ("miss", "hit")
            results = {kind: await window(kind) for kind in order}
            on_hit, on_miss = results["hit"], results["miss"]
            add("hit_miss_p50_ratio", on_hit.percentile_ms(0.5) / on_miss.percentile_ms(0.5))
            add("hit_miss_p99_ratio", on_hit.percentile_ms(0.99) / on_miss.percentile_ms(0.99))
    finally:
        await connection.close()
    every = steps["hit"] + steps["miss"]
    missing = sum(1 for s in every if "auth" not in s)

    def front(kind: str, q: float) -> float:
        """Auth, rate limit and cache lookup together, for hits or misses."""
        sums = [s.get("auth", 0) + s.get("limit", 0) + s.get("cache", 0) for s in steps[kind]]
        return percentile(sums, q)

    return {
        **{name: _median(values) for name, values in figures.items()},
        "cache_step_p50_ms": percentile([s.get("cache", 0.0) for s in every], 0.5),
        "cache_step_p50_ms_hit": percentile([s.get("cache", 0.0) for s in steps["hit"]], 0.5),
        "cache_step_p50_ms_miss": percentile([s.get("cache", 0.0) for s in steps["miss"]], 0.5),
        "cache_step_p99_ms": percentile([s.get("cache", 0.0) for s in every], 0.99),
        # A miss waits ~30 ms on the model before the next request, as in auth_cost; hits
        # follow each other at once, with the gateway's loop and caches still warm.
        "auth_limit_cache_p50_ms_miss": front("miss", 0.5),
        "auth_limit_cache_p99_ms_miss": front("miss", 0.99),
        "auth_limit_cache_p50_ms_hit": front("hit", 0.5),
        "auth_limit_cache_p99_ms_hit": front("hit", 0.99),
        "miss_backend_p50_ms": percentile([s.get("backend", 0.0) for s in steps["miss"]], 0.5),
        "hits_with_backend_step": sum(1 for s in steps["hit"] if "backend" in s),
        "x_cache_mismatches_hit": mismatches["hit"],
        "x_cache_mismatches_miss": mismatches["miss"],
        "answers_without_auth_step": missing,
        "rounds": rounds,
        "calls_per_window": total,
    }
