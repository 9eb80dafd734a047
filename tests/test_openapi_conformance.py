"""The gateway against its own OpenAPI document, with schemathesis: for every operation
(files, batches, the OpenAI routes, tokens, feedback and the admin routes among them),
requests generated from the document (valid ones and some that break it) with a valid
key, and every answer checked: no 5xx, a status the document declares, the declared
content type and headers, and a body that matches its declared schema.

Schema-valid input may still be refused (400) where the limit belongs to the model
version a backend hosts (``max_input_chars``, texts per request) and so is not in the
static document: schemathesis's ``positive_data_acceptance`` check is left out.

The bulk routes take NDJSON: a generated body (one line's object) is sent as one line.
They answer a bad line with an error line in a 200 stream, not with a 400, so
``negative_data_rejection`` is left out for them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

from switchyard.redis_server import LocalRedis
from tests.conftest import make_key
from tests.support import GatewayProcess, ServiceProcess, gateway_process

EXAMPLES_PER_OPERATION = 12
"""Enough to reach every field's bounds and types; few enough that generation routes,
which run the real summarizer, stay within seconds."""


@schemathesis.serializer("application/x-ndjson")
def ndjson_line(context: Any, value: Any) -> bytes:
    """A generated NDJSON body: the generated value as its one line."""
    return json.dumps(value).encode() + b"\n"


LINE_BY_LINE = frozenset({"POST /v1/classify/bulk", "POST /v1/ner/bulk"})
"""Operations that answer bad input line by line, in a 200 stream."""


EXERCISED = frozenset(
    {
        "POST /v1/files",
        "GET /v1/files/{file_id}/content",
        "POST /v1/batches",
        "POST /v1/batches/{batch_id}/cancel",
        "POST /v1/chat/completions",
        "POST /v1/completions",
        "POST /v1/auth/token",
        "POST /v1/auth/revoke",
        "POST /v1/feedback",
        "GET /v1/admin/experiments/{model}",
        "POST /v1/admin/rollouts/{model}/shadow",
        "DELETE /v1/admin/rollouts/{model}/shadow",
        "POST /v1/admin/tokens/revoke",
    }
)
"""Operations that must be in the document and fuzzed (every one is; these are named so
that one dropped from the document, and so from the fuzzing, fails the test)."""


OWN_DATABASE = 7
"""The Redis database of this test's gateway: the admin operations it sends (rollouts,
backends, keys) must not reach the routing tables of the other tests' gateways."""


@pytest.fixture(scope="module")
def redis_url(redis_server: LocalRedis) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{OWN_DATABASE}"


@pytest.fixture(scope="module")
def own_gateway(
    classifier: ServiceProcess,
    ner: ServiceProcess,
    summarizer: ServiceProcess,
    redis_url: str,
) -> Iterator[GatewayProcess]:
    """A gateway of this test's own, in front of the session's services."""
    backends = {
        "classifier": classifier.address,
        "ner": ner.address,
        "summarizer": summarizer.address,
    }
    with gateway_process(backends, redis_url=redis_url) as process:
        yield process


@pytest.fixture(scope="module")
def document(own_gateway: GatewayProcess) -> OpenApiSchema:
    loaded = schemathesis.openapi.from_url(f"{own_gateway.url}/openapi.json")
    assert isinstance(loaded, OpenApiSchema)
    return loaded


@pytest.fixture(scope="module")
def key(redis_url: str) -> str:
    # An admin key reaches every operation. Short generations keep the summarizer's
    # examples fast; the limits stay out of the way.
    return make_key(redis_url, "admin", "enterprise", max_new_tokens=2, per_minute=1_000_000)


def operations(document: OpenApiSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    found = []
    for result in document.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        found.append(result.ok())
    assert len(found) > 10
    return found


@pytest.mark.timeout(900)
def test_every_operation_answers_as_its_document_says(
    own_gateway: GatewayProcess, document: OpenApiSchema, key: str
) -> None:
    gateway = own_gateway
    auth = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    for operation in operations(document):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_declared(case: Case[Any]) -> None:
            excluded = [positive_data_acceptance]
            if case.operation.label in LINE_BY_LINE:
                excluded.append(negative_data_rejection)
            response = case.call_and_validate(
                headers=auth, base_url=gateway.url, excluded_checks=excluded
            )
            statuses.setdefault(case.operation.label, set()).add(response.status_code)

        try:
            answers_as_declared()
        except Exception as error:  # collected, so one run names every failure
            failures.append(f"{operation.label}: {error}")
    # The gateway is still up and well after all of it.
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    assert not failures, "\n\n".join(failures)
    assert set(statuses) >= EXERCISED, sorted(EXERCISED - set(statuses))
    # Requests really ran, valid ones served and invalid ones refused.
    assert {200, 400} <= statuses["POST /v1/classify"]
    assert {200, 400} <= statuses["POST /v1/summarize/stream"]
    assert {201, 400} <= statuses["POST /v1/admin/keys"]
    assert 200 in statuses["POST /v1/classify/bulk"]
    # Generated model names are not the summarizer's: the OpenAI routes answer 404 and 400
    # to most; the completion's example is served.
    assert {404, 400} <= statuses["POST /v1/chat/completions"], statuses
    assert {200, 400} <= statuses["POST /v1/completions"], statuses
