"""What the routes answer besides their own JSON: each route's documented errors, made from
the refusals it declares, and the answer helper the model routes share.

A route lists the refusals it may raise (``responses=refusals(...)``); its OpenAPI
``responses`` then name each of their statuses, with the error envelope and the
refusals' descriptions, and ``default`` for anything else (an internal error). Errors are
always JSON, whatever the route's own answer is (a stream, Prometheus text).
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from gateway.errors.refusals import (
    ApiError,
    DeadlineExceeded,
    Gone,
    InvalidArgument,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)

Responses = dict[int | str, dict[str, Any]]

CALLER: tuple[type[ApiError], ...] = (Unauthenticated, PermissionDenied, Unavailable, RateLimited)
"""A route that checks its caller: no or a bad credential, a missing role, the key store
unreachable, an address over its invalid credentials."""

JSON_BODY: tuple[type[ApiError], ...] = (InvalidArgument, PayloadTooLarge, UnsupportedMediaType)
"""A route that reads a JSON body."""

MODEL_CALL: tuple[type[ApiError], ...] = (
    InvalidArgument,
    NotFound,
    Gone,
    RateLimited,
    Overloaded,
    Unavailable,
    DeadlineExceeded,
)
"""A route that calls a model: its limits, the version's routing, the backend's answer."""

_ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


def _in_envelope(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ENVELOPE_REF}},
    }


def refusals(*kinds: type[ApiError]) -> Responses:
    """The OpenAPI ``responses`` of a route that may raise ``kinds`` (in any order, a kind
    given twice counts once): one entry per status, in status order, then ``default``."""
    described: dict[int, list[str]] = {}
    for kind in kinds:
        texts = described.setdefault(kind.status, [])
        if kind.description not in texts:
            texts.append(kind.description)
    responses: Responses = {
        status: _in_envelope(" ".join(texts)) for status, texts in sorted(described.items())
    }
    responses["default"] = _in_envelope("Any other error, in the same envelope.")
    return responses


def json_answer(answer: BaseModel) -> Response:
    # The answer was built from typed values already: serialize it once, without
    # FastAPI validating it again against the response model.
    return Response(answer.model_dump_json(), media_type="application/json")
