"""Summaries streamed as Server-Sent Events through the gateway, from the real summarizer."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from tests.support import GatewayProcess, ServiceProcess

# The summarizer's default version, which a caller that names none is answered by.
DEFAULT = {"model": "summarizer", "version": "v1-ct2"}
STORY = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
    "from 1887 to 1889 as the centrepiece of the 1889 World's Fair."
)


@pytest.fixture
def http(gateway: GatewayProcess, client_key: str) -> Iterator[httpx.Client]:
    headers = {"X-API-Key": client_key}
    with httpx.Client(base_url=gateway.url, timeout=120, headers=headers) as client:
        yield client


def test_tokens_count_up_and_the_done_event_carries_the_usage(http: httpx.Client) -> None:
    options = {"text": STORY, "max_new_tokens": 16, "seed": 3}
    with connect_sse(http, "POST", "/v1/summarize/stream", json=options) as source:
        response = source.response
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["x-model-version"] == DEFAULT["version"]
        events = list(source.iter_sse())
    tokens = [e for e in events if e.event == "token"]
    generation = events[0].id.rpartition(".")[0]
    assert generation.startswith("gen_"), "event ids name their generation"
    assert [e.id for e in events] == [f"{generation}.{i}" for i in range(len(events))]
    assert [e.json()["index"] for e in tokens] == list(range(len(tokens)))
    assert [e.event for e in events] == ["token"] * len(tokens) + ["done"]
    done = events[-1].json()
    assert done["version"] == DEFAULT["version"]
    assert done["usage"]["generated_tokens"] == 16
    assert done["usage"]["finish_reason"] == "length"
    assert done["usage"]["time_to_first_token_ms"] > 0

    whole = http.post("/v1/summarize", json=options).json()
    assert "".join(e.json()["text"] for e in tokens) == whole["summary"]


def test_eventsource_get_streams_the_same_and_caps_the_query_text(
    http: httpx.Client, gateway: GatewayProcess
) -> None:
    params = {"text": STORY, "max_new_tokens": "6"}
    # EventSource can only GET: the text and options travel in the query string.
    with connect_sse(http, "GET", "/v1/summarize/stream", params=params) as source:
        events = list(source.iter_sse())
    assert events[-1].event == "done"
    assert sum(e.event == "token" for e in events) >= 1

    too_long = http.get("/v1/summarize/stream", params={"text": "x" * 5000})
    assert too_long.status_code == 400
    assert "4096" in too_long.json()["error"]["message"]
    unknown = http.get("/v1/summarize/stream", params={"text": "x", "colour": "red"})
    assert unknown.status_code == 400

    # The user's text is in the query string: the access log masks it.
    gateway.wait_log(lambda r: r["message"] == "GET /v1/summarize/stream?<masked> 400")
    assert not any("Eiffel" in json.dumps(r) for r in gateway.logs)


def test_a_reconnect_of_an_ended_stream_gets_204(http: httpx.Client) -> None:
    reply = http.get("/v1/summarize/stream", params={"text": STORY}, headers={"Last-Event-ID": "7"})
    assert reply.status_code == 204
    assert reply.content == b""


def test_a_generation_nobody_reads_is_cancelled_after_the_grace_period(
    http: httpx.Client, summarizer: ServiceProcess, gateway: GatewayProcess
) -> None:
    cancelled = {**DEFAULT, "finish_reason": "cancelled"}
    before = summarizer.metric("switchyard_generations_total", cancelled)
    after_cancel_before = summarizer.metric("switchyard_tokens_after_cancel_total", DEFAULT)
    received: list[ServerSentEvent] = []
    # Sampled hot with a seed: the same long ramble every run, which no end token cuts
    # short, so the generation is still running when the grace period ends.
    options = {"text": STORY, "max_new_tokens": 400, "temperature": 2.0, "seed": 1}
    with connect_sse(http, "POST", "/v1/summarize/stream", json=options) as source:
        for event in source.iter_sse():
            received.append(event)
            if len(received) == 2:
                break  # leaving the block closes the connection
    assert [e.event for e in received] == ["token", "token"]
    summarizer.wait_metric("switchyard_generations_total", cancelled, before + 1)
    extra = summarizer.metric("switchyard_tokens_after_cancel_total", DEFAULT) - after_cancel_before
    assert extra <= 2
    gateway_metrics = http.get("/metrics").text
    assert "switchyard_gateway_open_streams 0.0" in gateway_metrics
