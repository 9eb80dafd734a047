"""The gateway's REST interface in front of the real classifier, NER and summarizer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import GatewayProcess, ServiceProcess

UNSEEN = "🎉 Last spring Ingrid Halvorsen moved to Lisbon."


@pytest.fixture
def http(gateway: GatewayProcess, client_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {client_key}"}
    with httpx.Client(base_url=gateway.url, timeout=120, headers=headers) as client:
        yield client


ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    504: "server_error",
}


def error_of(reply: httpx.Response) -> dict[str, str]:
    """The error of an answer in OpenAI's envelope, its type the one of its status, and
    whether to send it again said (only a deadline or an unavailable backend is)."""
    body = reply.json()
    assert set(body) == {"error"}, body
    error: dict[str, str] = body["error"]
    assert set(error) == {"message", "type", "param", "code", "request_id"}
    assert error["request_id"] == reply.headers["x-request-id"]
    assert error["type"] == ERROR_TYPES[reply.status_code]
    retry = reply.status_code in (503, 504)
    assert reply.headers["x-should-retry"] == ("true" if retry else "false")
    return error


def test_classify_answers_per_text_with_version_request_id_and_timing(
    http: httpx.Client, gateway: GatewayProcess
) -> None:
    reply = http.post(
        "/v1/classify",
        json={"texts": ["I love this, it works perfectly", "Terrible, it broke at once"]},
        headers={"X-Request-ID": "caller-chosen-id-1"},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [r["labels"][0]["label"] for r in body["results"]] == ["positive", "negative"]
    assert body["model"] == "sentiment"
    assert body["version"] == reply.headers["x-model-version"] == "v1"
    assert body["request_id"] == reply.headers["x-request-id"] == "caller-chosen-id-1"
    timing = reply.headers["server-timing"]
    # An API key is checked, counted and the texts looked up in the cache in one Redis
    # round trip: "auth" covers the limit and the cache lookup too.
    assert {step.split(";")[0] for step in timing.split(", ")} == {"auth", "backend"}
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["referrer-policy"] == "no-referrer"
    logged = gateway.wait_log(lambda r: r.get("request_id") == "caller-chosen-id-1")
    assert logged["message"] == "POST /v1/classify 200"
    assert logged["version"] == "v1"


def test_a_version_is_pinned_by_header_and_a_new_request_id_is_made(
    http: httpx.Client,
) -> None:
    reply = http.post(
        "/v1/classify", json={"text": "Lovely", "top_k": 1}, headers={"X-Model-Version": "v2"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["version"] == reply.headers["x-model-version"] == "v2"
    assert len(reply.json()["results"][0]["labels"]) == 1
    assert len(reply.headers["x-request-id"]) == 32


def test_ner_offsets_are_code_points(http: httpx.Client) -> None:
    reply = http.post("/v1/ner", json={"text": UNSEEN})
    assert reply.status_code == 200, reply.text
    entities = reply.json()["results"][0]["entities"]
    assert {e["text"] for e in entities} >= {"Ingrid Halvorsen", "Lisbon"}
    for entity in entities:
        assert UNSEEN[entity["start"] : entity["end"]] == entity["text"]


def test_summarize_answers_the_whole_summary_and_usage(http: httpx.Client) -> None:
    reply = http.post(
        "/v1/summarize",
        json={"text": "Paris is the capital of France and its largest city.", "max_new_tokens": 8},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["summary"]
    assert body["usage"]["generated_tokens"] == 8
    assert body["usage"]["finish_reason"] == "length"
    assert reply.headers["x-model-version"] == "v1-ct2"  # the summarizer's default


def test_models_lists_every_service_and_version(http: httpx.Client) -> None:
    reply = http.get("/v1/models")
    assert reply.status_code == 200
    listed = {(m["service"], m["name"], v["version"], v["status"])
              for m in reply.json()["models"] for v in m["versions"]}  # fmt: skip
    assert listed == {
        ("classifier", "sentiment", "v1", "ready"),
        ("classifier", "sentiment", "v2", "ready"),
        ("ner", "ner", "v1", "ready"),
        ("ner", "ner", "v1-int8", "ready"),
        ("summarizer", "summarizer", "v1", "ready"),
        ("summarizer", "summarizer", "v1-ct2", "ready"),
        ("summarizer", "summarizer", "v1-ct2-int8", "ready"),
        ("summarizer", "summarizer", "v1-lookup", "ready"),
    }
    drafts = {v["version"]: v["prompt_lookup_tokens"]
              for m in reply.json()["models"] if m["service"] == "summarizer"
              for v in m["versions"]}  # fmt: skip
    assert drafts == {"v1": 0, "v1-ct2": 0, "v1-ct2-int8": 0, "v1-lookup": 10}
    # The same models in OpenAI's list shape, for its SDKs.
    body = reply.json()
    assert body["object"] == "list"
    cards = {(c["service"], c["id"], tuple(c["versions"]), c["default_version"])
             for c in body["data"]}  # fmt: skip
    assert cards == {
        (m["service"], m["name"], tuple(v["version"] for v in m["versions"]),
         next(v["version"] for v in m["versions"] if v["default"]))
        for m in body["models"]
    }  # fmt: skip
    assert all(
        (c["object"], c["owned_by"], c["created"]) == ("model", "switchyard", 0)
        for c in body["data"]
    )


@pytest.mark.parametrize(
    ("body", "status", "code", "named"),
    [
        ({"texts": []}, 400, "invalid_argument", "texts"),
        ({"texts": [1, 2]}, 400, "invalid_argument", "texts.0"),
        ({}, 400, "invalid_argument", "`text` or `texts`"),
        ({"text": "x", "tpo_k": 1}, 400, "invalid_argument", "tpo_k"),
        ({"text": "x", "top_k": -1}, 400, "invalid_argument", "top_k"),
        ({"texts": ["x"] * 9}, 400, "invalid_argument", "limit is 8"),
        ({"text": "x" * 201}, 400, "invalid_argument", "200"),
        ({"text": "x", "model": "nope"}, 404, "not_found", "nope"),
    ],
)
def test_bad_input_gets_a_clear_error_in_the_envelope(
    http: httpx.Client, body: object, status: int, code: str, named: str
) -> None:
    reply = http.post("/v1/classify", json=body)
    assert reply.status_code == status, reply.text
    error = error_of(reply)
    assert error["code"] == code
    assert named in error["message"]


def test_malformed_bodies_unknown_versions_and_routes(http: httpx.Client) -> None:
    headers = {"Content-Type": "application/json"}
    cases = [
        (http.post("/v1/classify", content=b'{"texts": [', headers=headers), 400),
        (http.post("/v1/classify", content=b'{"text": "\xff\xfe"}', headers=headers), 400),
        (http.post("/v1/classify", json={"text": "x"}, headers={"X-Model-Version": "v9"}), 404),
        (http.get("/v1/nothing-here"), 404),
        (http.put("/v1/classify", json={"text": "x"}), 405),
        (http.post("/v1/summarize", json={"text": ""}), 400),
        (http.post("/v1/summarize", json={"text": "x", "temperature": "hot"}), 400),
    ]
    for reply, status in cases:
        assert reply.status_code == status, reply.text
        error = error_of(reply)
        assert "Traceback" not in error["message"]
    assert "v9" in cases[2][0].json()["error"]["message"]


def test_names_callers_make_up_make_no_metric_series(http: httpx.Client) -> None:
    pinned = http.post("/v1/classify", json={"text": "x"}, headers={"X-Model-Version": "zz-41"})
    assert pinned.status_code == 404
    assert "x-model-version" not in pinned.headers
    unknown = http.post("/v1/classify", json={"text": "x", "model": "made-up-model"})
    assert unknown.status_code == 404
    metrics = http.get("/metrics").text
    assert "zz-41" not in metrics and "made-up-model" not in metrics


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(
    http: httpx.Client,
) -> None:
    huge = b'{"text": "' + b"a" * 2_000_000 + b'"}'
    declared = http.post("/v1/classify", content=huge, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413
    assert error_of(declared)["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield huge[:1000]
        yield huge[1000:]

    chunked = http.post(
        "/v1/classify", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    assert error_of(chunked)["code"] == "payload_too_large"


def test_a_spent_time_budget_is_a_gateway_timeout(http: httpx.Client) -> None:
    reply = http.post(
        "/v1/summarize",
        json={"text": "A long story about a town and its river.", "max_new_tokens": 200},
        headers={"X-Request-Timeout": "0.05"},
    )
    assert reply.status_code == 504, reply.text
    assert error_of(reply)["code"] == "deadline_exceeded"
    bad = http.post("/v1/classify", json={"text": "x"}, headers={"X-Request-Timeout": "soon"})
    assert bad.status_code == 400


def test_health_readiness_docs_and_metrics(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready"}
    assert http.get("/docs").status_code == 200
    spec = http.get("/openapi.json").json()
    assert {"/v1/classify", "/v1/ner", "/v1/summarize", "/v1/summarize/stream"} <= set(
        spec["paths"]
    )
    assert http.post("/v1/classify", json={"text": "Fine"}).status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    samples = families["switchyard_gateway_requests"].samples
    assert any(
        s.labels["route"] == "/v1/classify"
        and s.labels["status"] == "200"
        and s.labels["version"] == "v1"
        and s.value >= 1
        for s in samples
    )
    assert "switchyard_gateway_request_duration_seconds" in families
    assert "switchyard_gateway_open_streams" in families


def test_cors_allows_only_configured_origins(gateway: GatewayProcess) -> None:
    # The session gateway has no CORS origins configured: no grant to any origin.
    reply = httpx.options(
        f"{gateway.url}/v1/classify",
        headers={"Origin": "https://example.org", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in reply.headers


def test_predictions_are_cached_per_version_and_a_batch_runs_only_its_misses(
    http: httpx.Client, classifier: ServiceProcess
) -> None:
    seen = f"What a lovely afternoon {uuid.uuid4().hex}"
    first = http.post("/v1/classify", json={"text": seen})
    assert first.headers["x-cache"] == "MISS"
    again = http.post("/v1/classify", json={"text": seen})
    assert again.headers["x-cache"] == "HIT"
    assert again.json()["results"] == first.json()["results"]
    assert again.headers["x-model-version"] == "v1"

    other_version = http.post(
        "/v1/classify", json={"text": seen}, headers={"X-Model-Version": "v2"}
    )
    assert other_version.headers["x-cache"] == "MISS"
    assert other_version.json()["version"] == "v2"
    bypass = http.post("/v1/classify", json={"text": seen}, headers={"Cache-Control": "no-cache"})
    assert bypass.headers["x-cache"] == "MISS"
    other_options = http.post("/v1/classify", json={"text": seen, "top_k": 1})
    assert other_options.headers["x-cache"] == "MISS"

    texts_run = classifier.metric("switchyard_batch_size_sum", {"version": "v1"})
    new = f"A dreadful experience {uuid.uuid4().hex}"
    mixed = http.post("/v1/classify", json={"texts": [seen, new]})
    assert mixed.headers["x-cache"] == "MISS"
    assert [r["labels"][0]["label"] for r in mixed.json()["results"]] == ["positive", "negative"]
    assert classifier.metric("switchyard_batch_size_sum", {"version": "v1"}) - texts_run == 1
