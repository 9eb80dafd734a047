"""SIGTERM drains the gateway: not ready, new calls refused, calls in flight finished,
open streams ended with an error event that says to send the request again."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from switchyard.redis_server import LocalRedis
from tests.support import GatewayProcess, ServiceProcess

# The summarizer's default version, which answers callers that name none.
DEFAULT = {"model": "summarizer", "version": "v1-ct2"}
STORY = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built it."
)


def sse_lines(response: httpx.Response) -> list[str]:
    return list(response.iter_lines())


def test_sigterm_finishes_calls_in_flight_and_ends_streams_with_a_retry_error(
    prepared_models: Path,
    classifier: ServiceProcess,
    ner: ServiceProcess,
    summarizer: ServiceProcess,
    redis_server: LocalRedis,
    client_key: str,
) -> None:
    backends = {
        "classifier": classifier.address,
        "ner": ner.address,
        "summarizer": summarizer.address,
    }
    gateway = GatewayProcess(backends, redis_url=redis_server.url, sse_heartbeat_s="0.05")
    auth = {"Authorization": f"Bearer {client_key}"}
    try:
        gateway.wait_ready()
        http = httpx.Client(base_url=gateway.url, timeout=120, headers=auth)
        unary: dict[str, httpx.Response] = {}
        with http.stream(
            "POST", "/v1/summarize/stream", json={"text": STORY, "max_new_tokens": 400}
        ) as stream:
            lines = stream.iter_lines()
            seen: list[str] = []
            # A token, and heartbeats (comments) between tokens.
            while not (any(s.startswith("event: token") for s in seen)
                       and any(s.startswith(":") for s in seen)):  # fmt: skip
                seen.append(next(lines))

            # A unary call waits behind the stream (the summarizer generates one at a time).
            queued = summarizer.metric("switchyard_queue_depth", DEFAULT) + 1

            def call_unary() -> None:
                unary["reply"] = httpx.post(
                    f"{gateway.url}/v1/summarize",
                    json={"text": STORY, "max_new_tokens": 4},
                    headers=auth,
                    timeout=120,
                )

            caller = threading.Thread(target=call_unary)
            caller.start()
            summarizer.wait_metric("switchyard_queue_depth", DEFAULT, queued)

            # A request whose body is still arriving is in flight too; it holds the drain
            # open until the test has looked at the draining gateway.
            release = threading.Event()

            def slow_body() -> Iterator[bytes]:
                yield b'{"text": '
                release.wait(120)
                yield b'"I love it"}'

            def call_slow() -> None:
                unary["slow"] = httpx.post(
                    f"{gateway.url}/v1/classify",
                    content=slow_body(),
                    headers={"Content-Type": "application/json", **auth},
                    timeout=120,
                )

            uploader = threading.Thread(target=call_slow)
            uploader.start()
            # The stream, the unary call, the upload, and the metrics request itself.
            gateway.wait_metric("switchyard_gateway_requests_in_flight", {}, 4)

            gateway.process.send_signal(signal.SIGTERM)
            rest = list(lines)

        events = [line for line in seen + rest if line.startswith("event: ")]
        assert events[-1] == "event: error"
        error = json.loads(next(s for s in reversed(rest) if s.startswith("data: "))[6:])
        assert error["error"]["code"] == "unavailable"
        assert "again" in error["error"]["message"]

        # Draining, not gone: not ready, and new calls are sent elsewhere.
        ready = http.get("/readyz")
        refused = http.post("/v1/classify", json={"text": "fine"})
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"

        # What was accepted before the signal is answered in full.
        caller.join(timeout=120)
        assert unary["reply"].status_code == 200, unary["reply"].text
        assert unary["reply"].json()["summary"]
        release.set()
        uploader.join(timeout=120)
        assert unary["slow"].status_code == 200, unary["slow"].text
        assert unary["slow"].json()["results"][0]["labels"][0]["label"] == "positive"
        http.close()
        assert gateway.process.wait(timeout=120) == 0
    finally:
        gateway.terminate()
