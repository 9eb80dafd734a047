"""Streams that outlive their connection: a reconnect with ``Last-Event-ID`` resumes the
same generation through any replica, only for the caller who started it; and a unary
summary whose client goes away stops generating."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from switchyard.redis_server import LocalRedis
from tests.conftest import make_key
from tests.support import GatewayProcess, ServiceProcess, gateway_process

pytestmark = pytest.mark.timeout(300)

DEFAULT = {"model": "summarizer", "version": "v1-ct2"}
STORY = (
    "The Great Wall of China is a series of fortifications that were built across the"
    " historical northern borders of ancient Chinese states and Imperial China as protection"
    " against various nomadic groups from the Eurasian Steppe. Several walls were built from"
    " as early as the 7th century BC, with selective stretches later joined by Qin Shi Huang."
)
GREEDY = {"text": STORY, "max_new_tokens": 64}


@pytest.fixture(scope="module")
def second_gateway(
    gateway: GatewayProcess,
    classifier: ServiceProcess,
    ner: ServiceProcess,
    summarizer: ServiceProcess,
    redis_server: LocalRedis,
) -> Iterator[GatewayProcess]:
    """Another replica beside ``gateway``: the same backends and the same Redis."""
    backends = {"classifier": classifier.address, "ner": ner.address}
    backends["summarizer"] = summarizer.address
    with gateway_process(backends, redis_url=redis_server.url) as process:
        yield process


def client_for(gateway: GatewayProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, timeout=120, headers={"X-API-Key": key})


def first_events(http: httpx.Client, count: int) -> list[ServerSentEvent]:
    """The stream's first ``count`` events; then the connection is dropped."""
    received: list[ServerSentEvent] = []
    with connect_sse(http, "POST", "/v1/summarize/stream", json=GREEDY) as source:
        for event in source.iter_sse():
            received.append(event)
            if len(received) == count:
                break
    return received


def resumed(http: httpx.Client, last_event_id: str) -> httpx.Response:
    headers = {"Last-Event-ID": last_event_id}
    return http.post("/v1/summarize/stream", json=GREEDY, headers=headers)


def parse(body: str) -> list[ServerSentEvent]:
    """The events of a whole Server-Sent Events body (comments left out)."""
    events: list[ServerSentEvent] = []
    fields: dict[str, str] = {}
    for line in body.splitlines():
        if not line:
            if "data" in fields:
                event = fields.get("event", "message")
                events.append(ServerSentEvent(event, fields["data"], fields.get("id", "")))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    return events


def test_a_stream_cut_short_resumes_through_another_replica_without_gap_or_repeat(
    gateway: GatewayProcess, second_gateway: GatewayProcess, client_key: str
) -> None:
    with client_for(gateway, client_key) as http:
        whole = http.post("/v1/summarize", json=GREEDY).json()["summary"]
        before = first_events(http, 3)
    assert [e.event for e in before] == ["token"] * 3
    with client_for(second_gateway, client_key) as http:
        reply = resumed(http, before[-1].id)
    assert reply.status_code == 200
    after = parse(reply.text)
    generation = before[0].id.rpartition(".")[0]
    ids = [e.id for e in before + after]
    assert ids == [f"{generation}.{i}" for i in range(len(ids))], "no gap and no repeat"
    assert after[-1].event == "done"
    text = "".join(e.json()["text"] for e in before + after if e.event == "token")
    assert text == whole, "the same generation, not a new one"

    # Resuming from its last event: nothing is left, which tells EventSource to stop.
    with client_for(second_gateway, client_key) as http:
        assert resumed(http, after[-1].id).status_code == 204


def test_another_caller_cannot_resume_a_stream(
    gateway: GatewayProcess, redis_server: LocalRedis, client_key: str
) -> None:
    with client_for(gateway, client_key) as http:
        before = first_events(http, 1)
    stranger = make_key(redis_server.url, "client", "enterprise")
    with client_for(gateway, stranger) as http:
        refused = resumed(http, before[-1].id)
    assert refused.status_code == 403
    assert "another caller" in refused.json()["error"]["message"]
    with client_for(gateway, client_key) as http:
        assert resumed(http, before[-1].id).status_code == 200


def test_an_abandoned_summary_stops_generating(
    gateway: GatewayProcess, summarizer: ServiceProcess, client_key: str
) -> None:
    cancelled = {**DEFAULT, "finish_reason": "cancelled"}
    before = summarizer.metric("switchyard_generations_total", cancelled)
    after_cancel_before = summarizer.metric("switchyard_tokens_after_cancel_total", DEFAULT)
    # Sampled hot with a seed: a long ramble that no end token cuts short.
    body = {"text": STORY, "max_new_tokens": 400, "temperature": 2.0, "seed": 1}

    async def abandon() -> None:
        headers = {"X-API-Key": client_key}
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=120) as http:
            call = asyncio.ensure_future(http.post("/v1/summarize", json=body))
            running = {**DEFAULT}
            while summarizer.metric("switchyard_generations_running", running) < 1:
                await asyncio.to_thread(
                    summarizer.wait_metric, "switchyard_generations_running", running, 1
                )
            call.cancel()  # the client goes away mid-generation
            with pytest.raises(asyncio.CancelledError):
                await call

    asyncio.run(abandon())
    summarizer.wait_metric("switchyard_generations_total", cancelled, before + 1)
    summarizer.wait_metric("switchyard_generations_running", DEFAULT, 0)
    extra = summarizer.metric("switchyard_tokens_after_cancel_total", DEFAULT) - after_cancel_before
    assert extra <= 2


def test_an_openai_stream_resumes_through_another_replica(
    gateway: GatewayProcess, second_gateway: GatewayProcess, client_key: str
) -> None:
    chat = {
        "model": "summarizer",
        "messages": [{"role": "user", "content": "Name three rivers of Europe."}],
        "max_tokens": 24,
    }
    with client_for(gateway, client_key) as http:
        whole = http.post("/v1/chat/completions", json=chat).json()
        received: list[ServerSentEvent] = []
        stream = {**chat, "stream": True}
        with connect_sse(http, "POST", "/v1/chat/completions", json=stream) as source:
            for event in source.iter_sse():
                received.append(event)
                if len(received) == 3:
                    break
    with client_for(second_gateway, client_key) as http:
        headers = {"Last-Event-ID": received[-1].id}
        reply = http.post("/v1/chat/completions", json=stream, headers=headers)
        # The same generation is not for the other kind of route.
        completion = {"model": "summarizer", "prompt": "x", "max_tokens": 24, "stream": True}
        elsewhere = http.post("/v1/completions", json=completion, headers=headers)
    assert reply.status_code == 200
    rest = parse(reply.text)
    assert rest[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in received + rest[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert elsewhere.status_code == 400
    assert "route that started it" in elsewhere.json()["error"]["message"]
