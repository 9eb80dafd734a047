"""A gateway for the benchmarks, as it ships, and an API key for it on a real Redis."""

from __future__ import annotations

import time
import urllib.request

import redis.asyncio as redis

from bench.http_client import classify_body
from bench.raw import TEXTS
from gateway.access.keys import KeyStore
from switchyard.processes import STARTUP_TIMEOUT_S, GatewayProcess, free_port

# Far above anything the benchmark sends: the limit is checked on every request, and
# never refuses one.
KEY_LIMITS: dict[str, object] = {"per_minute": 10_000_000, "per_day": None}


async def create_key(redis_url: str) -> str:
    """A new client API key on the enterprise tier, limits far above the load."""
    client = redis.Redis.from_url(redis_url)
    try:
        _, key = await KeyStore(client).create("bench", "client", "enterprise", KEY_LIMITS)
        return key
    finally:
        await client.aclose()


def start_gateway(classifier: str, summarizer: str, key: str, **settings: str) -> GatewayProcess:
    """A gateway in front of the classifier and the summarizer, NER on a closed port:
    /readyz never answers 200, so this waits until ``POST /v1/classify`` does (with
    ``key``, bypassing the cache)."""
    gateway = GatewayProcess(
        {"classifier": classifier, "ner": f"127.0.0.1:{free_port()}", "summarizer": summarizer},
        **settings,
    )
    try:
        gateway.wait_listening()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        request = urllib.request.Request(  # noqa: S310 (http only)
            f"{gateway.url}/v1/classify",
            data=classify_body(TEXTS[0]).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {key}",
                "Cache-Control": "no-cache",
            },
        )
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (http only)
                    if reply.status == 200:
                        return gateway
            except OSError:
                pass  # not answering yet
            if gateway.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway never answered: {gateway.logs[-20:]}")
            time.sleep(0.05)
    except BaseException:
        gateway.terminate()
        raise
