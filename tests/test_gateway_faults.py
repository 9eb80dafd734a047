"""Faults behind the gateway: overloads with retry hints, failures mid-stream, the trace
context the backend receives (a scripted backend), and a real backend that goes down and
comes back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from httpx_sse import connect_sse

from switchyard.processes import ServiceProcess
from switchyard.redis_server import LocalRedis
from tests.conftest import STANDARD_BATCHING
from tests.scripted_backend import ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, free_port, gateway_process, write_registry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedBackend]:
    with scripted_backend() as backend:
        yield backend


@pytest.fixture(scope="module")
def scripted_gateway(
    scripted: ScriptedBackend, redis_server: LocalRedis
) -> Iterator[GatewayProcess]:
    backends = {name: scripted.address for name in ("classifier", "ner", "summarizer")}
    # No prediction cache: every request here must reach the backend.
    with gateway_process(
        backends,
        redis_url=redis_server.url,
        cors_origins="https://app.example.org",
        cache_ttl_s="0",
    ) as gateway:
        yield gateway


@pytest.fixture
def http(scripted_gateway: GatewayProcess, client_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {client_key}"}
    with httpx.Client(base_url=scripted_gateway.url, timeout=60, headers=headers) as client:
        yield client


@pytest.fixture(autouse=True)
def fresh_script(scripted: ScriptedBackend) -> None:
    script = scripted.script
    script.classify_code = grpc.StatusCode.OK
    script.trailing_metadata = ()
    script.seen_metadata.clear()


def test_the_request_id_and_trace_context_reach_the_backend(
    http: httpx.Client, scripted: ScriptedBackend
) -> None:
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    reply = http.post(
        "/v1/classify",
        json={"text": "x"},
        headers={"X-Request-ID": "trace-me-1", "traceparent": traceparent},
    )
    assert reply.status_code == 200
    seen = scripted.script.seen_metadata[-1]
    assert seen["x-request-id"] == "trace-me-1"
    version, trace_id, span_id, flags = seen["traceparent"].split("-")
    # The caller's trace goes on; this hop is a new span under it.
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id != "00f067aa0ba902b7"

    http.post("/v1/classify", json={"text": "x"}, headers={"traceparent": "garbage"})
    fresh = scripted.script.seen_metadata[-1]["traceparent"].split("-")
    assert len(fresh[1]) == 32 and fresh[1] != TRACE_ID


def test_a_full_backend_queue_is_503_with_the_backends_retry_hint(
    http: httpx.Client, scripted: ScriptedBackend
) -> None:
    scripted.script.classify_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    scripted.script.classify_message = "the queue of sentiment v1 is full (16 waiting)"
    scripted.script.trailing_metadata = (("grpc-retry-pushback-ms", "2500"),)
    reply = http.post("/v1/classify", json={"text": "x"})
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "3"
    assert reply.json()["error"]["code"] == "overloaded"
    assert "queue" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("code", "status", "name"),
    [
        (grpc.StatusCode.UNAVAILABLE, 503, "unavailable"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "deadline_exceeded"),
        (grpc.StatusCode.INTERNAL, 500, "internal"),
        (grpc.StatusCode.UNKNOWN, 500, "internal"),
    ],
)
def test_backend_statuses_map_to_http_without_leaking_their_text(
    http: httpx.Client, scripted: ScriptedBackend, code: grpc.StatusCode, status: int, name: str
) -> None:
    scripted.script.classify_code = code
    scripted.script.classify_message = "secret internals: Traceback at model.py:12"
    reply = http.post("/v1/classify", json={"text": "x"})
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["code"] == name
    assert "secret" not in error["message"]
    if status == 503:
        assert reply.headers["retry-after"] == "1"


def test_a_backend_failing_mid_stream_ends_it_with_an_error_event(http: httpx.Client) -> None:
    with connect_sse(http, "POST", "/v1/summarize/stream", json={"text": "x"}) as source:
        events = list(source.iter_sse())
    assert [e.event for e in events] == ["token", "token", "token", "error"]
    error = json.loads(events[-1].data)["error"]
    assert error["code"] == "internal"
    assert error["request_id"] == source.response.headers["x-request-id"]
    assert "scripted" not in error["message"]


def test_cors_grants_the_configured_origin_only(http: httpx.Client) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = http.options(
        "/v1/classify", headers={"Origin": "https://app.example.org", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
    other = http.options("/v1/classify", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    answer = http.post(
        "/v1/classify", json={"text": "x"}, headers={"Origin": "https://app.example.org"}
    )
    assert "x-model-version" in answer.headers["access-control-expose-headers"].lower()


def test_a_service_given_no_backend_is_absent_from_readyz_and_refused_as_unavailable(
    scripted: ScriptedBackend, redis_server: LocalRedis, client_key: str
) -> None:
    # As switchyard up --services classifier,gateway starts it: the other services' backends
    # set empty. The gateway is ready (gateway_process waits for /readyz to answer 200).
    backends = {"classifier": scripted.address, "ner": "", "summarizer": ""}
    with (
        gateway_process(backends, redis_url=redis_server.url, cache_ttl_s="0") as gateway,
        httpx.Client(base_url=gateway.url, timeout=60, headers={"X-API-Key": client_key}) as http,
    ):
        assert http.get("/readyz").json() == {"status": "ready"}
        assert http.post("/v1/classify", json={"text": "x"}).status_code == 200
        for route in ("ner", "summarize"):
            absent = http.post(f"/v1/{route}", json={"text": "x"})
            assert absent.status_code == 503, absent.text
            assert absent.json()["error"]["code"] == "unavailable"
        listed = http.get("/v1/models").json()["models"]
        assert {m["service"] for m in listed} == {"classifier"}


def test_a_backend_down_is_named_by_readyz_and_the_gateway_reconnects_when_it_returns(
    prepared_models: Path,
    tmp_path: Path,
    scripted: ScriptedBackend,
    redis_server: LocalRedis,
    client_key: str,
) -> None:
    port = free_port()
    registry = write_registry(tmp_path / "registry.toml", {"v1": STANDARD_BATCHING})
    env = {
        "SWITCHYARD_CLASSIFIER_PORT": str(port),
        "SWITCHYARD_CLASSIFIER_METRICS_PORT": "0",
        "SWITCHYARD_CLASSIFIER_HOST": "127.0.0.1",
        "SWITCHYARD_CLASSIFIER_TORCH_THREADS": "1",
        "SWITCHYARD_CLASSIFIER_REGISTRY": str(registry),
    }
    backends = {
        "classifier": f"127.0.0.1:{port}",
        "ner": scripted.address,
        "summarizer": scripted.address,
    }
    first = ServiceProcess("classifier", env)
    try:
        first.wait_serving("switchyard.classifier.v1.ClassifierService")
        with (
            gateway_process(backends, redis_url=redis_server.url, cache_ttl_s="0") as gateway,
            httpx.Client(
                base_url=gateway.url, timeout=60, headers={"X-API-Key": client_key}
            ) as http,
        ):
            assert http.post("/v1/classify", json={"text": "Great"}).status_code == 200
            assert first.terminate() == 0

            down = http.post("/v1/classify", json={"text": "Great"})
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "unavailable"
            assert down.headers["retry-after"] == "1"
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["failing"] == [f"classifier@127.0.0.1:{port}"]
            # Everyone else is still served.
            assert http.post("/v1/summarize/stream", json={"text": "x"}).status_code == 200

            second = ServiceProcess("classifier", env)
            try:
                second.wait_serving("switchyard.classifier.v1.ClassifierService")
                # The gateway's channel reconnects within its reconnect backoff (2 s at
                # most); until then calls answer 503 as above.
                deadline = time.monotonic() + 60
                back = http.post("/v1/classify", json={"text": "Great"})
                while back.status_code == 503 and time.monotonic() < deadline:
                    back = http.post("/v1/classify", json={"text": "Great"})
                assert back.status_code == 200, back.text
                assert http.get("/readyz").status_code == 200
            finally:
                second.terminate()
    finally:
        first.terminate()
