"""Concurrent classify requests through the gateway share backend calls: the gateway app
in this process, a real Redis, and a scripted gRPC backend that holds its calls until the
test lets them go, so that the requests that arrive meanwhile are seen waiting."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import redis.asyncio as redis

from gateway.access.keys import KeyStore
from gateway.app import create_app
from gateway.backends.coalescer import Coalescer
from gateway.settings import GatewaySettings
from switchyard.redis_server import LocalRedis
from tests.scripted_backend import Script, ScriptedBackend, scripted_backend

MODEL = f"coalescing-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def scripted() -> Iterator[ScriptedBackend]:
    with scripted_backend(Script(model=MODEL, versions=("c1",), hold_classify=True)) as backend:
        yield backend


@pytest.fixture
async def gateway(
    scripted: ScriptedBackend, redis_server: LocalRedis
) -> AsyncIterator[tuple[httpx.AsyncClient, Coalescer]]:
    """The gateway app (two calls in flight per backend, as shipped) and the coalescer of
    its one classifier backend."""
    settings = GatewaySettings(
        classifier_backends=[scripted.address],
        ner_backends=[],
        summarizer_backends=[],
        redis_url=redis_server.url,
        cache_ttl_s=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        coalescer = app.state.gateway.backends.endpoints["classifier"][0].coalescer
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http, coalescer


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds: the backend answers on a thread of its own."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


async def key_of(client: redis.Redis) -> dict[str, str]:
    _, key = await KeyStore(client).create("coalescing-test", "client", "enterprise", {})
    return {"Authorization": f"Bearer {key}"}


async def test_requests_that_arrive_while_calls_run_share_the_next_call(
    gateway: tuple[httpx.AsyncClient, Coalescer], scripted: ScriptedBackend, client: redis.Redis
) -> None:
    http, coalescer = gateway
    headers = await key_of(client)
    texts = [[f"text {n} {uuid.uuid4()}"] for n in range(5)]
    texts[3].append(f"second text of request 3 {uuid.uuid4()}")
    scripted.script.labels_by_text = {t: f"label-{t.split()[1]}" for ts in texts for t in ts}
    scripted.script.release.clear()

    def post(body_texts: list[str]) -> asyncio.Task[httpx.Response]:
        body = {"model": MODEL, "texts": body_texts}
        return asyncio.ensure_future(http.post("/v1/classify", json=body, headers=headers))

    first = [post(t) for t in texts[:2]]
    await eventually(lambda: len(scripted.script.seen_texts) == 2)
    later = [post(t) for t in texts[2:]]
    await eventually(lambda: coalescer.waiting() == 3)
    scripted.script.release.set()
    replies = await asyncio.gather(*first, *later)

    for sent, reply in zip(texts, replies, strict=True):
        assert reply.status_code == 200, reply.text
        labels = [result["labels"][0]["label"] for result in reply.json()["results"]]
        assert labels == [f"label-{t.split()[1]}" for t in sent]
        assert reply.headers["x-model-version"] == "c1"
    seen = scripted.script.seen_texts
    assert sorted(map(tuple, seen[:2])) == sorted(map(tuple, texts[:2]))
    assert len(seen) == 3  # the three later requests in one call, each one's texts together
    assert sorted(seen[2]) == sorted(t for ts in texts[2:] for t in ts)
    start = seen[2].index(texts[3][0])
    assert seen[2][start : start + 2] == texts[3]
    # The gateway's metrics count requests per backend call: two alone, three together.
    metrics = (await http.get("/metrics")).text
    family = "switchyard_gateway_backend_call_requests"
    assert f'{family}_count{{service="classifier"}} 3.0' in metrics
    assert f'{family}_sum{{service="classifier"}} 5.0' in metrics
    assert f'{family}_bucket{{le="2.0",service="classifier"}} 2.0' in metrics


async def test_an_invalid_text_fails_its_own_request_not_those_it_shared_a_call_with(
    gateway: tuple[httpx.AsyncClient, Coalescer], scripted: ScriptedBackend, client: redis.Redis
) -> None:
    http, coalescer = gateway
    headers = await key_of(client)
    bad = f"scripted invalid {uuid.uuid4()}"
    scripted.script.invalid_texts = frozenset({bad})
    scripted.script.release.clear()

    def post(text: str) -> asyncio.Task[httpx.Response]:
        body = {"model": MODEL, "texts": [text]}
        return asyncio.ensure_future(http.post("/v1/classify", json=body, headers=headers))

    running = [post(f"running {n}") for n in range(2)]
    await eventually(lambda: len(scripted.script.seen_texts) == 2)
    good, invalid = post("a good text"), post(bad)
    await eventually(lambda: coalescer.waiting() == 2)
    scripted.script.release.set()

    for reply in await asyncio.gather(*running, good):
        assert reply.status_code == 200, reply.text
    refused = await invalid
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "invalid_argument"
    assert "a scripted invalid text" in refused.json()["error"]["message"]
    # Shared (in the order the two arrived), then each sent again alone.
    later = sorted(sorted(call) for call in scripted.script.seen_texts[2:])
    assert later == [["a good text"], ["a good text", bad], [bad]]
