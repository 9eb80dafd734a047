"""Answer helpers the routes share."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from gateway.routes.schemas import ErrorEnvelope

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in (
        (400, "Invalid input: malformed JSON, wrong types, missing or unknown fields."),
        (401, "No credential, or one that is not valid (see WWW-Authenticate)."),
        (403, "The caller lacks the role this needs."),
        (404, "Unknown model or version."),
        (405, "Not a method of this path (see Allow)."),
        (410, "The version was retired."),
        (413, "The body is larger than the gateway accepts."),
        (415, "The body is not declared as JSON."),
        (429, "The caller's rate limit or quota is spent; see Retry-After."),
        (503, "The model service is overloaded or unavailable; see Retry-After."),
        (504, "The model service did not answer within the time budget."),
        ("default", "Any other error, in the same envelope."),
    )
}
"""Every error a route may answer, in the one envelope."""

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in (401, 403, "default")
}
"""The errors of a route that only authenticates (no body, no model call)."""

_ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
JSON_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": ERROR_RESPONSES[status]["description"],
        "content": {"application/json": {"schema": _ENVELOPE_REF}},
    }
    for status in AUTH_RESPONSES
}
"""``AUTH_RESPONSES`` for a route whose own answer is not JSON (FastAPI would declare its
errors in the route's media type)."""


def json_answer(answer: BaseModel) -> Response:
    # The answer was built from typed values already: serialize it once, without
    # FastAPI validating it again against the response model.
    return Response(answer.model_dump_json(), media_type="application/json")
