"""The OpenAPI document: FastAPI's, plus the shapes FastAPI cannot infer.

For a ``text/event-stream`` answer, the schema describes one event, as OpenAPI 3.2's
``itemSchema`` does (and as 3.1 tools such as schemathesis read ``schema``): an object of
the fields ``event``, ``id`` and ``data``, one alternative per event name, where ``data``
is a string of JSON whose shape ``contentSchema`` gives. Those schemas are added to the
document's components so the references resolve.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from gateway.routes.schemas import DoneEvent, ErrorEnvelope, TokenEvent

REF_TEMPLATE = "#/components/schemas/{model}"

SSE_EVENTS: dict[str, type[BaseModel]] = {
    "token": TokenEvent,
    "done": DoneEvent,
    "error": ErrorEnvelope,
}
"""The events of a summary stream, by name, and the JSON each one's ``data`` holds."""


def sse_content(description: str) -> dict[str, Any]:
    """The ``content`` of a streamed answer: the shape of each of its events."""
    events = [
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": name},
                "id": {"type": "string"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": REF_TEMPLATE.format(model=kind.__name__)},
                },
            },
        }
        for name, kind in SSE_EVENTS.items()
    ]
    return {"text/event-stream": {"schema": {"description": description, "oneOf": events}}}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` FastAPI's document with the event schemas in its components."""

    made_by_fastapi = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            found = made_by_fastapi()  # also kept in app.openapi_schema
            schemas = found.setdefault("components", {}).setdefault("schemas", {})
            for kind in SSE_EVENTS.values():
                shown = kind.model_json_schema(ref_template=REF_TEMPLATE)
                for name, schema in shown.pop("$defs", {}).items():
                    schemas.setdefault(name, schema)
                schemas.setdefault(kind.__name__, shown)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
