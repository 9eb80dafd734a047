"""One error envelope for every failure, and the one table from gRPC codes to HTTP.

``{"error": {"code": "...", "message": "...", "request_id": "..."}}``. Messages written
by Switchyard's services are meant for callers and pass through; anything unexpected
becomes a generic ``internal`` error, so no exception text or stack trace reaches a client.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from grpc import aio
from redis import exceptions as redis_errors
from starlette.exceptions import HTTPException
from starlette.routing import Match

from gateway.validation import validation_message
from switchyard import logs
from switchyard.client.config import RETRY_PUSHBACK_KEY

log = logging.getLogger(__name__)

GENERIC_INTERNAL_MESSAGE = "internal error"
UNAVAILABLE_RETRY_AFTER_S = 1


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Mapping:
    status: int
    code: str
    passes_message: bool  # the service's message is meant for callers


_GRPC_TO_HTTP: dict[grpc.StatusCode, _Mapping] = {
    grpc.StatusCode.INVALID_ARGUMENT: _Mapping(400, "invalid_argument", True),
    grpc.StatusCode.OUT_OF_RANGE: _Mapping(400, "invalid_argument", True),
    grpc.StatusCode.NOT_FOUND: _Mapping(404, "not_found", True),
    grpc.StatusCode.RESOURCE_EXHAUSTED: _Mapping(503, "overloaded", True),
    grpc.StatusCode.UNAVAILABLE: _Mapping(503, "unavailable", False),
    grpc.StatusCode.DEADLINE_EXCEEDED: _Mapping(504, "deadline_exceeded", False),
}
_DEFAULT_MESSAGES = {
    "unavailable": "the model service is unavailable; retry shortly",
    "deadline_exceeded": "the model service did not answer within the request's time budget",
}
_INTERNAL = _Mapping(500, "internal", False)

_HTTP_CODES = {
    400: "invalid_argument",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def from_grpc(error: aio.AioRpcError, service: str) -> ApiError:
    """The HTTP answer to a failed backend call."""
    code = error.code()
    mapping = _GRPC_TO_HTTP.get(code, _INTERNAL)
    if mapping is _INTERNAL:
        log.error("%s answered %s: %s", service, code.name, error.details())
    message = (
        str(error.details())
        if mapping.passes_message and error.details()
        else _DEFAULT_MESSAGES.get(mapping.code, GENERIC_INTERNAL_MESSAGE)
    )
    headers: dict[str, str] = {}
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        headers["Retry-After"] = str(_retry_after_s(error))
    elif code is grpc.StatusCode.UNAVAILABLE:
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    return ApiError(mapping.status, mapping.code, message, headers)


def _retry_after_s(error: aio.AioRpcError) -> int:
    """Whole seconds from the backend's retry pushback (at least 1, as Retry-After counts
    whole seconds)."""
    metadata: Any = error.trailing_metadata() or ()
    for key, value in metadata:
        if key == RETRY_PUSHBACK_KEY:
            try:
                return max(1, math.ceil(int(str(value)) / 1000))
            except ValueError:
                break
    return 1


def envelope(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "request_id": request_id if request_id is not None else logs.request_id.get(),
        }
    }


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        envelope(error.code, error.message), status_code=error.status, headers=error.headers
    )


async def _on_api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(error)


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return error_response(ApiError(400, "invalid_argument", validation_message(error.errors())))


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = _HTTP_CODES.get(error.status_code, "internal" if error.status_code >= 500 else "error")
    message = {
        400: "the request body could not be read (JSON in UTF-8 is expected)",
        404: "no such route",
        413: "the request body is too large",
    }.get(error.status_code, str(error.detail))
    headers = dict(error.headers or {})
    if error.status_code == 405:
        # Starlette names the methods of the first route that matched the path; a path
        # served by several routes (GET and POST of a stream) must name them all.
        headers["Allow"] = ", ".join(allowed_methods(request))
        message = f"{request.method} is not allowed here; use {headers['Allow']}"
    return error_response(ApiError(error.status_code, code, message, headers))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at the request's path (asked of each route, as
    included routers keep their routes to themselves)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def _on_store_unreachable(request: Request, exc: Exception) -> JSONResponse:
    # Requests that must read or write shared state (admin changes, key lists) while Redis
    # is away; model requests handle that themselves (fail open or closed).
    log.warning("shared store unreachable on %s: %s", request.url.path, type(exc).__name__)
    unreachable = ApiError(
        503, "unavailable", "the shared store is unreachable; retry shortly", {"Retry-After": "1"}
    )
    return await _on_api_error(request, unreachable)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(redis_errors.ConnectionError, _on_store_unreachable)
    app.add_exception_handler(redis_errors.TimeoutError, _on_store_unreachable)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    # Anything else is answered by RequestContextMiddleware, which also logs it.
