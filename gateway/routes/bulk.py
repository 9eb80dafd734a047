"""``POST /v1/classify/bulk`` and ``POST /v1/ner/bulk``: texts as newline-delimited JSON,
read as they arrive, answered line by line as the model service gives each result.

The request is planned once (caller, per-minute limit, version) as any model request;
each line then counts against the daily quota (``gateway.routes.bulk_stream``). The
prediction cache is not used: a bulk answer streams straight from the service.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response

from gateway.backends import rpc_names
from gateway.edge import request_context
from gateway.errors.refusals import UnsupportedMediaType
from gateway.pipeline import ModelCall, PlannedCall, plan_call, time_budget_s
from gateway.routes.bodies import VERSION_PIN_DOC, version_pin
from gateway.routes.bulk_stream import Bulk, BulkService, StreamCall
from gateway.routes.deps import State
from gateway.routes.ndjson import NDJSON, NdjsonStream, SpillBuffer, is_ndjson
from gateway.routes.responses import CALLER, MODEL_CALL, refusals
from gateway.state import GatewayState
from switchyard.classifier.v1 import classifier_pb2
from switchyard.ner.v1 import ner_pb2

router = APIRouter(prefix="/v1", tags=["models"])

BULK_PATHS = frozenset({"/v1/classify/bulk", "/v1/ner/bulk"})
"""Exempt from the gateway's body size limit: they stream and limit their own."""

SPILL_MEMORY_BYTES = 1024 * 1024
"""Answer lines the client has not read yet kept in memory; more wait in a temporary file."""

DEFAULT_MAX_CHARS = 10_000
"""The longest text, when no backend lists the version's own (``max_input_chars``)."""

DESCRIPTION = """
The body is newline-delimited JSON (`Content-Type: application/x-ndjson`), one object per
line: `{"id": "a1", "text": "..."}`. `id` (a string or a number) is echoed as given; when
absent, the line's 0-based number is the id. Blank lines are skipped.

The answer streams as newline-delimited JSON, one line per input line, **in the order the
results are ready, not the input order**: `{"id", "model", "version", ...result}` with the
result as the unary route gives it per text, or `{"id", "error": {"code", "message"}}` for
a line that could not be answered (`invalid_argument`: not JSON, not an object, no text,
text too long; `rate_limited`: the daily quota ran out, and every later line gets this
too). A stream that cannot go on ends with one line holding only `error` (the backend
failed, the body passed the bulk size limit); lines not answered then were not processed.

The request counts once against the per-minute limit, and each line once against the daily
quota. One version answers every line (pin it with `X-Model-Version`). Answers are not
cached, and bulk requests are left out of what canary guardrails judge.
"""

_ERROR_LINE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "id": {"type": ["string", "number"]},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}


def _line_schema(field: str, item: str) -> dict[str, Any]:
    result = {
        "type": "object",
        "required": ["id", "model", "version", field],
        "properties": {
            "id": {"type": ["string", "number"]},
            "model": {"type": "string"},
            "version": {"type": "string"},
            field: {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        },
    }
    # "type" given, else FastAPI's own {"type": "string"} of a non-JSON answer stays merged in.
    return {
        "type": "object",
        "description": "One line of the answer.",
        "oneOf": [result, _ERROR_LINE],
    }


def _documented() -> dict[str, Any]:
    line = {
        "type": "object",
        "description": "One line of the body.",
        "required": ["text"],
        "properties": {"id": {"type": ["string", "number"]}, "text": {"type": "string"}},
    }
    body = {"required": True, "content": {NDJSON: {"schema": line}}}
    return {"requestBody": body, **VERSION_PIN_DOC}


def _responses(field: str, item: str) -> dict[int | str, dict[str, Any]]:
    answer = {
        "description": "One line per input line, as results are ready.",
        "content": {NDJSON: {"schema": _line_schema(field, item)}},
    }
    return {200: answer, **refusals(*CALLER, UnsupportedMediaType, *MODEL_CALL)}


# No request iterator: the texts are written (``call.write``) as the body's lines arrive.


def _classify_stream(plan: PlannedCall, timeout_s: float) -> StreamCall:
    stub = plan.endpoint.classifier.stub
    metadata = plan.call_metadata(rpc_names.CLASSIFY_STREAM)
    return stub.ClassifyStream(None, timeout=timeout_s, metadata=metadata)


def _ner_stream(plan: PlannedCall, timeout_s: float) -> StreamCall:
    stub = plan.endpoint.ner.stub
    metadata = plan.call_metadata(rpc_names.EXTRACT_ENTITIES_STREAM)
    return stub.ExtractEntitiesStream(None, timeout=timeout_s, metadata=metadata)


CLASSIFY = BulkService(
    "classifier",
    _classify_stream,
    lambda plan, key, text: classifier_pb2.ClassifyStreamRequest(
        id=key,
        text=text,
        model=plan.target.model,
        version=plan.target.version,
        request_id=plan.request_id,
    ),
    lambda result: {"labels": [{"label": s.label, "score": s.score} for s in result.labels]},
)

NER = BulkService(
    "ner",
    _ner_stream,
    lambda plan, key, text: ner_pb2.ExtractEntitiesStreamRequest(
        id=key,
        text=text,
        model=plan.target.model,
        version=plan.target.version,
        request_id=plan.request_id,
    ),
    lambda result: {
        "entities": [
            {"label": e.label, "score": e.score, "start": e.start, "end": e.end, "text": e.text}
            for e in result.entities
        ]
    },
)


def max_chars(state: GatewayState, service: str, plan: PlannedCall) -> int:
    """The longest text the planned version takes, as its backends list it."""
    for info in state.backends.models(service):
        if info.name == plan.target.model:
            for version in info.versions:
                if version.version == plan.target.version and version.max_input_chars:
                    return version.max_input_chars
    return DEFAULT_MAX_CHARS


async def bulk(request: Request, state: State, service: BulkService) -> Response:
    if not is_ndjson(request.headers.get("content-type")):
        raise UnsupportedMediaType(f"the body must be NDJSON (Content-Type: {NDJSON})")
    plan = await plan_call(request, state, ModelCall(service.name, "", version_pin(request)))
    request_context.current().judged = False
    # A bulk stream may run as long as a summary stream, not a unary call's budget.
    timeout_s = time_budget_s(request, state.settings.stream_timeout_s)
    out = SpillBuffer(SPILL_MEMORY_BYTES)
    work = Bulk(
        request,
        plan,
        service,
        service.open(plan, timeout_s),
        max_chars(state, service.name, plan),
        state.settings.bulk_max_body_bytes,
        out,
    )
    # Cache-Control: the answer is this request's results, never to be stored by a proxy.
    return NdjsonStream(out, asyncio.create_task(work.run()), {"Cache-Control": "no-store"})


@router.post(
    "/classify/bulk",
    summary="Classify texts given as NDJSON, answered as NDJSON",
    description=DESCRIPTION,
    status_code=200,
    response_class=NdjsonStream,
    responses=_responses("labels", "LabelScore"),
    openapi_extra=_documented(),
)
async def classify_bulk(request: Request, state: State) -> Response:
    return await bulk(request, state, CLASSIFY)


@router.post(
    "/ner/bulk",
    summary="Find named entities in texts given as NDJSON, answered as NDJSON",
    description=DESCRIPTION,
    status_code=200,
    response_class=NdjsonStream,
    responses=_responses("entities", "Entity"),
    openapi_extra=_documented(),
)
async def ner_bulk(request: Request, state: State) -> Response:
    return await bulk(request, state, NER)
