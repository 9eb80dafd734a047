"""Bulk NDJSON through the gateway (``/v1/classify/bulk``, ``/v1/ner/bulk``), in front of
the real classifier and NER services and a real Redis."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from gateway.routes.ndjson import LineSplitter, SpillBuffer
from switchyard.redis_server import LocalRedis
from tests.conftest import make_key
from tests.scripted_backend import ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, gateway_process

NDJSON = {"Content-Type": "application/x-ndjson"}
NO_CACHE = {"Cache-Control": "no-cache"}
"""On the unary calls compared with: bulk answers are never cached, and these must not be
either (other tests expect these texts uncached)."""

TEXTS = [
    "I love this, it works perfectly",
    "Terrible, it broke at once",
    "What a wonderful day at the beach",
    "The service was slow and the food was cold",
    "Absolutely fantastic support team",
    "I want my money back, this is awful",
]

NER_TEXTS = [
    "Ingrid Halvorsen moved to Lisbon last spring.",
    "Angela Merkel met Emmanuel Macron in Paris.",
    "Microsoft opened an office in Berlin.",
]


@pytest.fixture
def http(gateway: GatewayProcess, client_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {client_key}"}
    with httpx.Client(base_url=gateway.url, timeout=300, headers=headers) as client:
        yield client


def ndjson(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def answered(reply: httpx.Response) -> list[dict[str, Any]]:
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/x-ndjson")
    assert reply.text.endswith("\n")  # no line half-written
    return [json.loads(line) for line in reply.text.splitlines()]


def by_id(lines: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), "an id answered twice"
    return {line["id"]: line for line in lines}


def test_classify_bulk_answers_every_line_once_as_the_unary_route_does(
    http: httpx.Client,
) -> None:
    unary = http.post("/v1/classify", json={"texts": TEXTS}, headers=NO_CACHE)
    assert unary.status_code == 200, unary.text
    top = [r["labels"][0]["label"] for r in unary.json()["results"]]
    items = [{"id": f"t{i}", "text": TEXTS[i % len(TEXTS)]} for i in range(300)]
    lines = by_id(answered(http.post("/v1/classify/bulk", content=ndjson(items), headers=NDJSON)))
    assert set(lines) == {item["id"] for item in items}
    for i in range(300):
        line = lines[f"t{i}"]
        assert line["model"] == "sentiment" and line["version"] == "v1"
        assert line["labels"][0]["label"] == top[i % len(TEXTS)]
        assert set(line["labels"][0]) == {"label", "score"}


def test_ids_default_to_line_numbers_and_are_echoed_as_given(http: httpx.Client) -> None:
    body = b'{"text": "Great!"}\n\n{"id": 7.5, "text": "Awful."}\n{"id": "x", "text": "Fine."}'
    lines = by_id(answered(http.post("/v1/classify/bulk", content=body, headers=NDJSON)))
    # The blank line is skipped but numbered; the last line has no newline.
    assert set(lines) == {0, 7.5, "x"}
    assert all("labels" in line for line in lines.values())


def test_ner_bulk_finds_the_entities_the_unary_route_finds(http: httpx.Client) -> None:
    unary = http.post("/v1/ner", json={"texts": NER_TEXTS}, headers=NO_CACHE)
    assert unary.status_code == 200, unary.text
    expected = unary.json()["results"]
    items = [{"id": i, "text": text} for i, text in enumerate(NER_TEXTS)]
    lines = by_id(answered(http.post("/v1/ner/bulk", content=ndjson(items), headers=NDJSON)))
    assert set(lines) == set(range(len(NER_TEXTS)))
    for i, result in enumerate(expected):
        got = lines[i]["entities"]
        assert [(e["label"], e["start"], e["end"], e["text"]) for e in got] == [
            (e["label"], e["start"], e["end"], e["text"]) for e in result["entities"]
        ]
        assert [e["score"] for e in got] == pytest.approx([e["score"] for e in result["entities"]])
    assert any(lines[i]["entities"] for i in lines)


def big_body() -> tuple[bytes, int]:
    """About 3 MiB of lines: three times the gateway's 1 MiB limit of other bodies. Each
    line's id is long (and echoed), so the answer too is larger than the part of the spill
    buffer kept in memory (1 MiB); the texts stay short, so the model's work stays small."""
    lines = [
        json.dumps({"id": long_id(i), "text": TEXTS[i % len(TEXTS)]}).encode() + b"\n"
        for i in range(1_200)
    ]
    body = b"".join(lines)
    assert len(body) > 3 * 1024 * 1024
    return body, len(lines)


def long_id(number: int) -> str:
    return f"{number:06d}-" + "i" * 2_700


def ids_of(count: int) -> list[str]:
    return [long_id(i) for i in range(count)]


def test_a_body_past_the_unary_limit_streams_through_sent_piece_by_piece(
    http: httpx.Client,
) -> None:
    body, count = big_body()

    def pieces() -> Iterator[bytes]:
        # Pieces that cut lines in two, sent as the server asks for them.
        for start in range(0, len(body), 10_000):
            yield body[start : start + 10_000]

    with http.stream("POST", "/v1/classify/bulk", content=pieces(), headers=NDJSON) as reply:
        assert reply.status_code == 200
        ids = [json.loads(line)["id"] for line in reply.iter_lines() if line]
    assert sorted(ids) == ids_of(count)


def test_a_whole_body_sent_before_the_answer_is_read_does_not_stall(
    http: httpx.Client,
) -> None:
    body, count = big_body()
    # httpx writes the whole body, then reads: the answer waits in the spill buffer.
    lines = by_id(answered(http.post("/v1/classify/bulk", content=body, headers=NDJSON)))
    assert sorted(lines) == ids_of(count)
    assert all("labels" in line for line in lines.values())


def test_bad_lines_get_their_own_errors_and_the_rest_is_answered(http: httpx.Client) -> None:
    body = b"\n".join(
        [
            b'{"id": "good1", "text": "Great!"}',
            b"not json",
            b'{"id": "empty"}',
            b'["a", "list"]',
            b'{"id": "long", "text": "' + b"x" * 500 + b'"}',
            b'{"id": "huge", "text": "' + b"y" * 100_000 + b'"}',
            b'{"id": "num", "text": 12}',
            b'{"id": true, "text": "Fine."}',
            b'{"id": "good2", "text": "Awful."}',
        ]
    )
    lines = by_id(answered(http.post("/v1/classify/bulk", content=body, headers=NDJSON)))
    assert set(lines) == {"good1", 1, "empty", 3, "long", 5, "num", 7, "good2"}
    assert "labels" in lines["good1"] and "labels" in lines["good2"]
    for bad in (1, "empty", 3, "long", 5, "num", 7):
        assert lines[bad]["error"]["code"] == "invalid_argument", lines[bad]
        assert lines[bad]["error"]["message"]


def test_wrong_content_type_no_key_and_the_document(
    http: httpx.Client, gateway: GatewayProcess
) -> None:
    reply = http.post("/v1/classify/bulk", json={"text": "Great!"})
    assert reply.status_code == 415
    assert reply.json()["error"]["code"] == "unsupported_media_type"
    anonymous = httpx.post(
        f"{gateway.url}/v1/ner/bulk", content=b'{"text": "Hi"}\n', headers=NDJSON
    )
    assert anonymous.status_code == 401
    paths = httpx.get(f"{gateway.url}/openapi.json").json()["paths"]
    for path in ("/v1/classify/bulk", "/v1/ner/bulk"):
        operation = paths[path]["post"]
        assert "application/x-ndjson" in operation["requestBody"]["content"]
        assert "application/x-ndjson" in operation["responses"]["200"]["content"]


def test_the_daily_quota_counts_lines_and_runs_out_mid_stream(
    gateway: GatewayProcess, redis_server: LocalRedis
) -> None:
    key = make_key(redis_server.url, "client", "free", per_minute=100, per_day=5)
    items = [{"id": i, "text": TEXTS[i % len(TEXTS)]} for i in range(12)]
    reply = httpx.post(
        f"{gateway.url}/v1/classify/bulk",
        content=ndjson(items),
        headers={**NDJSON, "Authorization": f"Bearer {key}"},
        timeout=120,
    )
    lines = by_id(answered(reply))
    assert set(lines) == set(range(12))
    served = [i for i, line in lines.items() if "labels" in line]
    refused = [i for i, line in lines.items() if "error" in line]
    assert len(served) == 5 and len(refused) == 7
    for i in refused:
        assert lines[i]["error"]["code"] == "rate_limited"
        assert "day limit of 5" in lines[i]["error"]["message"]
    # The quota is spent: the next request is refused before it starts.
    again = httpx.post(
        f"{gateway.url}/v1/classify/bulk",
        content=ndjson(items[:1]),
        headers={**NDJSON, "Authorization": f"Bearer {key}"},
    )
    assert again.status_code == 429


def test_each_line_counts_once_and_unused_reservations_are_given_back(
    gateway: GatewayProcess, redis_server: LocalRedis
) -> None:
    key = make_key(redis_server.url, "client", "free", per_minute=100, per_day=100)
    auth = {"Authorization": f"Bearer {key}"}
    items = [{"id": i, "text": TEXTS[i % len(TEXTS)]} for i in range(10)]
    reply = httpx.post(
        f"{gateway.url}/v1/classify/bulk",
        content=ndjson(items),
        headers={**NDJSON, **auth},
        timeout=120,
    )
    assert len(by_id(answered(reply))) == 10
    # The bulk request's own count paid for its first line; a window of lines was
    # reserved for the rest and what was left of it given back: 10 counted in all.
    after = httpx.post(f"{gateway.url}/v1/classify", json={"text": "Fine."}, headers=auth)
    assert after.status_code == 200
    assert '"daily";r=89;' in after.headers["ratelimit"]


def test_a_client_that_goes_away_mid_body_ends_the_request(
    http: httpx.Client, gateway: GatewayProcess
) -> None:
    sent = threading.Event()

    def pieces() -> Iterator[bytes]:
        yield ndjson([{"id": i, "text": TEXTS[0]} for i in range(50)])
        sent.set()
        raise ConnectionAbortedError("the client gives up")  # the connection is dropped

    with pytest.raises((ConnectionAbortedError, httpx.HTTPError)):
        http.post(
            "/v1/classify/bulk",
            content=pieces(),
            headers={**NDJSON, "X-Request-ID": "bulk-client-gone"},
        )
    assert sent.is_set()
    # Its work stopped: the request is over (the access log is written as it ends),
    # though the body never ended.
    logged = gateway.wait_log(lambda r: r.get("request_id") == "bulk-client-gone")
    assert str(logged["message"]).startswith("POST /v1/classify/bulk")


BULK_LIMIT = 4_000


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedBackend]:
    with scripted_backend() as backend:
        yield backend


@pytest.fixture(scope="module")
def limited_gateway(scripted: ScriptedBackend, redis_server: LocalRedis) -> Iterator[str]:
    """A gateway in front of the scripted classifier, with a bulk body limit."""
    backends = {name: scripted.address for name in ("classifier", "ner", "summarizer")}
    with gateway_process(
        backends, redis_url=redis_server.url, bulk_max_body_bytes=str(BULK_LIMIT)
    ) as gateway:
        yield gateway.url


def test_a_backend_failing_mid_stream_ends_it_with_one_error_line(
    scripted: ScriptedBackend, limited_gateway: str, client_key: str
) -> None:
    scripted.script.stream_pieces = 3
    scripted.script.stream_failure = grpc.StatusCode.UNAVAILABLE
    items = [{"id": i, "text": "Fine."} for i in range(10)]
    reply = httpx.post(
        f"{limited_gateway}/v1/classify/bulk",
        content=ndjson(items),
        headers={**NDJSON, "Authorization": f"Bearer {client_key}"},
        timeout=60,
    )
    lines = answered(reply)
    *results, last = lines
    assert last == {"error": {"code": "unavailable", "message": last["error"]["message"]}}
    assert len(by_id(results)) == 3 and all("labels" in line for line in results)


def test_a_body_past_the_bulk_limit_ends_the_stream_with_an_error_line(
    scripted: ScriptedBackend, limited_gateway: str, client_key: str
) -> None:
    scripted.script.stream_pieces = 1_000
    items = [{"id": i, "text": "Fine. " * 10} for i in range(100)]
    body = ndjson(items)
    assert len(body) > 2 * BULK_LIMIT

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 1_000):
            yield body[start : start + 1_000]

    reply = httpx.post(
        f"{limited_gateway}/v1/classify/bulk",
        content=pieces(),
        headers={**NDJSON, "Authorization": f"Bearer {client_key}"},
        timeout=60,
    )
    *results, last = answered(reply)
    assert last["error"]["code"] == "payload_too_large" and "id" not in last
    served = by_id(results)
    assert 0 < len(served) < len(items)
    assert all("labels" in line for line in served.values())


def test_lines_are_cut_across_chunks_and_an_over_long_one_is_dropped_as_it_comes() -> None:
    splitter = LineSplitter(max_bytes=10)
    found: list[tuple[int, bytes | None]] = []
    for chunk in (b'{"a"', b":1}\r\n\n" + b"x" * 8, b"x" * 8, b"\n", b"tail"):
        found.extend(splitter.feed(chunk))
        assert len(splitter._pending) <= 10  # never more of a line than the cap
    found.extend(splitter.finish())
    assert found == [(0, b'{"a":1}'), (2, None), (3, b"tail")]


async def test_the_spill_buffer_keeps_order_from_memory_to_disk_and_back() -> None:
    buffer = SpillBuffer(memory_bytes=100)
    lines = [f"{i:03d}".encode() * 10 + b"\n" for i in range(50)]  # 31 bytes each
    for line in lines[:40]:
        buffer.put(line)  # past 100 bytes: on disk
    assert buffer._file._rolled  # type: ignore[attr-defined]
    got = b""
    while len(got) < 40 * 31:
        got += await buffer.get()
    for line in lines[40:]:
        buffer.put(line)
    buffer.close()
    while piece := await buffer.get():
        got += piece
    assert got == b"".join(lines)


def test_a_client_that_goes_away_while_answers_stream_cancels_the_service_stream(
    scripted: ScriptedBackend, limited_gateway: str, client_key: str
) -> None:
    script = scripted.script
    script.stream_pieces = 2
    script.hold_streams = True
    script.release.clear()
    script.stream_cancelled.clear()
    items = [{"id": i, "text": "Fine."} for i in range(5)]
    try:
        with httpx.stream(
            "POST",
            f"{limited_gateway}/v1/classify/bulk",
            content=ndjson(items),
            headers={**NDJSON, "Authorization": f"Bearer {client_key}"},
            timeout=60,
        ) as reply:
            assert "labels" in json.loads(next(reply.iter_lines()))
        # Left unread: httpx closes the connection.
        assert script.stream_cancelled.wait(30), "the service's stream was not cancelled"
    finally:
        script.hold_streams = False
        script.release.set()
