"""What a model route reads from its request: the JSON body, parsed straight into its
pydantic model, and the version pin header.

FastAPI's own body handling (dependency solving, then validation of the decoded JSON)
cost about a tenth of the gateway's CPU per classify request in ``bench/gateway.py``;
``model_validate_json`` parses and validates in one pass in pydantic's Rust core. The
OpenAPI document still shows each body's schema and examples and the header
(``documented``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from gateway.errors.refusals import InvalidArgument, UnsupportedMediaType
from gateway.errors.validation import param_of, validation_message

Body = TypeVar("Body", bound=BaseModel)


def is_json(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` type, any parameters aside; an absent type is
    taken as JSON (as most HTTP clients send a body they were given as bytes)."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(request: Request, kind: type[Body]) -> Body:
    """The body as a ``kind``; 415 unless it is declared JSON; 400 naming every field
    that is wrong, or saying why the body is not JSON (malformed, not UTF-8)."""
    # A browser sends text/plain (or a form) cross-origin without asking CORS first:
    # refusing every other type keeps such requests from reaching a model or an admin
    # action.
    if not is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType("the body must be JSON (Content-Type: application/json)")
    try:
        return kind.model_validate_json(await request.body())
    except ValidationError as error:
        problems = error.errors()
        raise InvalidArgument(validation_message(problems), param=param_of(problems)) from None


VERSION_PIN_HEADER = "x-model-version"


PINNED_PREFIX = "/models/{model}/versions/{version}"
"""Routes under this prefix pin the model and version in the path instead of a header."""


def version_pin(request: Request) -> str | None:
    """The pinned version: the path's (``/v1/models/{model}/versions/{version}/...``),
    else the ``X-Model-Version`` header's."""
    pinned: str | None = request.path_params.get("version")
    return pinned or request.headers.get(VERSION_PIN_HEADER)


def model_of(request: Request, named: str) -> str:
    """The model the request names: the path's, else the body's (400 if they differ)."""
    in_path: str | None = request.path_params.get("model")
    if in_path is None:
        return named
    if named and named != in_path:
        message = f"model: the path names {in_path}, the body {named}"
        raise InvalidArgument(message)
    return in_path


VERSION_PIN_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-Model-Version",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Pin the model version that must answer.",
        }
    ]
}
"""``openapi_extra`` of a route that reads the version pin."""


def body_schema(kind: type[BaseModel]) -> dict[str, Any]:
    """``kind``'s JSON Schema with its nested models written in place: a ``$defs``
    reference inside ``openapi_extra`` would point at the document's root, where no
    ``$defs`` is."""
    schema = kind.model_json_schema()
    defs = schema.pop("$defs", {})

    def inlined(node: Any) -> Any:
        if isinstance(node, list):
            return [inlined(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return inlined({**defs[ref.removeprefix("#/$defs/")], **rest})
        return {key: inlined(value) for key, value in node.items()}

    result: dict[str, Any] = inlined(schema)
    return result


def documented(kind: type[BaseModel], pin: bool = True) -> dict[str, Any]:
    """``openapi_extra`` that documents ``kind`` as the route's JSON body, and the
    version pin header (for model routes)."""
    body = {
        "required": True,
        "content": {"application/json": {"schema": body_schema(kind)}},
    }
    return {"requestBody": body, **(VERSION_PIN_DOC if pin else {})}


def documented_pinned(kind: type[BaseModel]) -> dict[str, Any]:
    """``documented`` for a route under ``PINNED_PREFIX``: the path names the model, so
    the body's ``model`` is left out of its schema (it is accepted if it names the same)."""
    schema = kind.model_json_schema()
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k != "model"}
    body = {"required": True, "content": {"application/json": {"schema": schema}}}
    return {"requestBody": body}
