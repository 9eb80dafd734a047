"""What the gateway refuses, and how: every refusal a 4xx in the one envelope, naming the
field and the problem in the gateway's own words; never a 500, never pydantic's text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support import GatewayProcess


@pytest.fixture
def http(gateway: GatewayProcess, client_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {client_key}"}
    with httpx.Client(base_url=gateway.url, timeout=120, headers=headers) as client:
        yield client


def refusal(reply: httpx.Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code", "request_id"}
    message: str = error["message"]
    # Nothing of pydantic's own wording or links reaches a caller.
    for leak in ("pydantic", "errors.pydantic.dev", "Input should", "Value error", "type="):
        assert leak not in message, message
    return message


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/v1/classify", {"text": "a", "top_k": 2**32}, "top_k: must be at most 4294967295"),
        ("/v1/classify", {"text": "a", "top_k": -1}, "top_k: must be at least 0"),
        ("/v1/summarize", {"text": "a", "seed": 10**30}, "seed: must be at most"),
        ("/v1/summarize", {"text": "a", "max_new_tokens": 2**40}, "max_new_tokens: must be at"),
        ("/v1/summarize/stream", {"text": "a", "seed": 2**64}, "seed: must be at most"),
        ("/v1/summarize", {"text": "a", "temperature": False}, "temperature: must be a number"),
        ("/v1/classify", {"text": "a", "top_k": True}, "top_k: must be a number"),
        ("/v1/classify", {"text": "a", "texts": ["b"]}, "exactly one of `text` or `texts`"),
        ("/v1/classify", {"texts": []}, "texts: must have at least 1 item"),
        ("/v1/ner", {"text": "a", "colour": "red"}, "colour: is not a field of this request"),
        ("/v1/ner", ["a"], "body: must be an object"),
    ],
)
def test_numbers_that_do_not_fit_and_wrong_types_are_400_naming_the_field(
    http: httpx.Client, path: str, body: object, named: str
) -> None:
    reply = http.post(path, json=body)
    assert named in refusal(reply, 400)
    # The field is the error's param too (none when the body as a whole is wrong).
    field = named.split(":")[0]
    expected = None if " " in field or field == "body" else field
    assert reply.json()["error"]["param"] == expected
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert reply.headers["x-should-retry"] == "false"


def test_a_seed_too_large_in_a_query_string_is_400(http: httpx.Client) -> None:
    reply = http.get("/v1/summarize/stream", params={"text": "a", "seed": str(10**30)})
    assert "seed: must be at most" in refusal(reply, 400)


def test_the_largest_values_the_protobuf_holds_are_accepted(http: httpx.Client) -> None:
    reply = http.post("/v1/classify", json={"text": "I love it", "top_k": 2**32 - 1})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["results"][0]["labels"]) == 2


def test_a_keys_limits_are_checked_in_the_gateways_words(
    gateway: GatewayProcess, admin_key: str
) -> None:
    admin = {"Authorization": f"Bearer {admin_key}"}
    cases = [
        ({"owner": "x", "limits": {"bogus": 1}}, "limits.bogus: is not a field of this request"),
        ({"owner": "x", "limits": {"per_minute": 0}}, "limits.per_minute: must be at least 1"),
        ({"owner": "x", "limits": {"per_minute": 2**60}}, "limits.per_minute: must be at most"),
        ({"owner": "x", "limits": {"per_day": True}}, "limits.per_day: must be a number"),
        ({"owner": ""}, "owner: must have at least 1 character"),
    ]
    for body, named in cases:
        reply = httpx.post(f"{gateway.url}/v1/admin/keys", json=body, headers=admin)
        assert named in refusal(reply, 400)


def test_a_json_body_sent_as_another_type_is_415(http: httpx.Client) -> None:
    body = b'{"text": "I love it"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/plain; a=b"):
        reply = http.post("/v1/classify", content=body, headers={"Content-Type": content_type})
        assert "Content-Type: application/json" in refusal(reply, 415)
    for content_type in ("application/json", "application/json; charset=utf-8"):
        reply = http.post("/v1/classify", content=body, headers={"Content-Type": content_type})
        assert reply.status_code == 200, reply.text


def test_a_405_allows_every_method_of_the_path(http: httpx.Client) -> None:
    reply = http.put("/v1/summarize/stream", json={"text": "a"})
    refusal(reply, 405)
    assert reply.headers["allow"] == "GET, POST"
    assert http.delete("/v1/classify").headers["allow"] == "POST"


def test_answers_do_not_name_the_server_software(http: httpx.Client) -> None:
    for reply in (http.get("/healthz"), http.post("/v1/classify", json={"text": "a"})):
        assert "server" not in reply.headers, reply.headers


def test_the_openapi_document_declares_streams_metrics_and_bounds(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for route in ("/v1/summarize/stream", "/v1/models/{model}/versions/{version}/summarize/stream"):
        for method, operation in document["paths"][route].items():
            content = operation["responses"]["200"]["content"]
            assert list(content) == ["text/event-stream"], (route, method)
            events = content["text/event-stream"]["schema"]["oneOf"]
            assert [e["properties"]["event"]["const"] for e in events] == [
                "token",
                "done",
                "error",
            ]
            for event in events:
                data = event["properties"]["data"]["contentSchema"]
                assert data["$ref"].rsplit("/", 1)[-1] in schemas
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    body = document["paths"]["/v1/classify"]["post"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    assert schema["oneOf"] == [{"required": ["text"]}, {"required": ["texts"]}]
    assert schema["properties"]["top_k"]["maximum"] == 2**32 - 1
    summarize = document["paths"]["/v1/summarize"]["post"]["requestBody"]["content"]
    seed = summarize["application/json"]["schema"]["properties"]["seed"]
    assert seed["maximum"] == 2**64 - 1
    assert "401" in document["paths"]["/v1/classify"]["post"]["responses"]
    assert "429" in document["paths"]["/v1/classify"]["post"]["responses"]
    # The OpenAI routes answer JSON or, with `stream: true`, events; their bodies' nested
    # models are written in place, and errors have OpenAI's fields.
    for route in ("/v1/chat/completions", "/v1/completions"):
        operation = document["paths"][route]["post"]
        assert set(operation["responses"]["200"]["content"]) == {
            "application/json",
            "text/event-stream",
        }
        assert {"400", "401", "404", "429"} <= set(operation["responses"])
    chat = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]
    assert "$defs" not in json.dumps(chat)
    fields = chat["application/json"]["schema"]["properties"]["messages"]["items"]["properties"]
    assert fields["role"]["enum"] == ["system", "developer", "user", "assistant"]
    assert {"message", "type", "param", "code", "request_id"} <= set(
        schemas["ErrorBody"]["properties"]
    )
