"""CORS: which origins may call the gateway from a browser, with which headers, what their
scripts may read of the answers, and how a refused preflight is answered. A gateway
process in front of a scripted backend (these are the gateway's own decisions), with
Redis so that answers carry the rate-limit headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gateway.app import create_app
from gateway.settings import GatewaySettings
from switchyard.redis_server import LocalRedis
from tests.scripted_backend import ScriptedBackend, scripted_backend
from tests.support import GatewayProcess, gateway_process

EXACT_ORIGIN = "https://app.example.org"
ORIGIN_PATTERN = r"https://[a-z0-9-]+\.preview\.example\.org"
MAX_AGE_S = 120
PREFLIGHT_POST = {"Access-Control-Request-Method": "POST"}
BROWSER_CLIENT_HEADERS = "authorization, x-api-key, cache-control, last-event-id, content-type"


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedBackend]:
    with scripted_backend() as backend:
        yield backend


@pytest.fixture(scope="module")
def gateway(scripted: ScriptedBackend, redis_server: LocalRedis) -> Iterator[GatewayProcess]:
    backends = {name: scripted.address for name in ("classifier", "ner", "summarizer")}
    with gateway_process(
        backends,
        redis_url=redis_server.url,
        cors_origins=EXACT_ORIGIN,
        cors_origin_regex=ORIGIN_PATTERN,
        cors_max_age_s=str(MAX_AGE_S),
        cache_ttl_s="0",
    ) as process:
        yield process


def preflight(gateway: GatewayProcess, origin: str, **headers: str) -> httpx.Response:
    return httpx.options(
        f"{gateway.url}/v1/classify", headers={"Origin": origin, **PREFLIGHT_POST, **headers}
    )


def listed(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",")}


@pytest.mark.parametrize("origin", [EXACT_ORIGIN, "https://pr-42.preview.example.org"])
def test_a_preflight_from_an_allowed_origin_grants_the_headers_browser_clients_send(
    gateway: GatewayProcess, origin: str
) -> None:
    reply = preflight(gateway, origin, **{"Access-Control-Request-Headers": BROWSER_CLIENT_HEADERS})
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == origin
    assert listed(BROWSER_CLIENT_HEADERS) <= listed(reply.headers["access-control-allow-headers"])
    assert {"get", "post", "put", "delete", "head", "options"} <= listed(
        reply.headers["access-control-allow-methods"]
    )
    assert reply.headers["access-control-max-age"] == str(MAX_AGE_S)
    assert "access-control-allow-credentials" not in reply.headers  # off by default


def assert_refused(reply: httpx.Response, *said: str) -> None:
    assert reply.status_code == 403, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert "access-control-allow-origin" not in reply.headers
    error = reply.json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", "permission_denied")
    assert error["message"].startswith("CORS preflight refused")
    assert error["request_id"] == reply.headers["x-request-id"]
    for words in said:
        assert words in error["message"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        # The pattern must match the whole origin, not a part of it.
        "https://pr-42.preview.example.org.evil.example",
        "http://pr-42.preview.example.org",
    ],
)
def test_a_preflight_from_another_origin_is_refused_in_the_error_envelope(
    gateway: GatewayProcess, origin: str
) -> None:
    assert_refused(preflight(gateway, origin), f"origin {origin!r} is not allowed")


def test_a_preflight_asking_for_a_header_or_method_not_allowed_is_refused(
    gateway: GatewayProcess,
) -> None:
    header = preflight(
        gateway, EXACT_ORIGIN, **{"Access-Control-Request-Headers": "x-api-key, x-secret-thing"}
    )
    assert_refused(header, "x-secret-thing")
    assert "x-api-key" not in header.json()["error"]["message"].split("(")[0]
    method = httpx.options(
        f"{gateway.url}/v1/classify",
        headers={"Origin": EXACT_ORIGIN, "Access-Control-Request-Method": "PATCH"},
    )
    assert_refused(method, "method 'PATCH' is not allowed")


def test_an_answer_to_an_allowed_origin_exposes_the_rate_limit_and_request_headers(
    gateway: GatewayProcess, client_key: str
) -> None:
    reply = httpx.post(
        f"{gateway.url}/v1/classify",
        json={"text": "x"},
        headers={"Origin": EXACT_ORIGIN, "X-API-Key": client_key},
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == EXACT_ORIGIN
    exposed = listed(reply.headers["access-control-expose-headers"])
    wanted = {"ratelimit", "ratelimit-policy", "retry-after", "x-request-id", "x-model-version"}
    assert wanted | {"x-route-reason", "x-cache", "server-timing", "deprecation", "sunset"} <= (
        exposed
    )
    # Every one of those this answer carries is readable by the page's script.
    carried = {name.lower() for name in reply.headers} & wanted
    assert {"ratelimit", "ratelimit-policy", "x-request-id", "x-model-version"} <= carried


def test_credentials_are_granted_only_when_the_setting_says_so() -> None:
    asked = {"Origin": EXACT_ORIGIN, **PREFLIGHT_POST}
    for allowed, expected in ((False, None), (True, "true")):
        settings = GatewaySettings(cors_origins=[EXACT_ORIGIN], cors_allow_credentials=allowed)
        with TestClient(create_app(settings)) as http:
            reply = http.options("/v1/classify", headers=asked)
            assert reply.status_code == 200
            assert reply.headers.get("access-control-allow-credentials") == expected
            assert reply.headers["access-control-max-age"] == "600"


def test_an_origin_pattern_that_is_not_a_regular_expression_stops_the_start() -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        GatewaySettings(cors_origin_regex="https://(unclosed")
