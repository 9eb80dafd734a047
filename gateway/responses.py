"""Answer helpers the routes share."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from gateway.schemas import ErrorEnvelope

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in (
        (400, "Invalid input: malformed JSON, wrong types, missing or unknown fields."),
        (404, "Unknown model or version."),
        (413, "The body is larger than the gateway accepts."),
        (503, "The model service is overloaded or unavailable; see Retry-After."),
        (504, "The model service did not answer within the time budget."),
        ("default", "Any other error, in the same envelope."),
    )
}


def json_answer(answer: BaseModel) -> Response:
    # The answer was built from typed values already: serialize it once, without
    # FastAPI validating it again against the response model.
    return Response(answer.model_dump_json(), media_type="application/json")
