"""The FastAPI exception handlers that answer every error in the envelope: the gateway's
own refusals, FastAPI's validation errors, Starlette's HTTP errors, an unreachable Redis."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis import exceptions as redis_errors
from starlette.exceptions import HTTPException
from starlette.routing import Match

from gateway.errors.refusals import (
    ApiError,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
    error_response,
    json_error,
)
from gateway.errors.validation import param_of, validation_message

log = logging.getLogger(__name__)

_STARLETTE_REFUSALS: dict[int, type[ApiError]] = {
    kind.status: kind
    for kind in (InvalidArgument, NotFound, MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType)
}
"""The refusals Starlette's own errors stand for (they carry only a status)."""


async def _on_api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(error)


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = error.errors()
    return error_response(InvalidArgument(validation_message(problems), param=param_of(problems)))


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    known = _STARLETTE_REFUSALS.get(error.status_code)
    code = known.code if known else ("internal" if error.status_code >= 500 else "error")
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
    return json_error(error.status_code, code, message, headers)


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
    unreachable = Unavailable("the shared store is unreachable; retry shortly", retry_after_s=1)
    return await _on_api_error(request, unreachable)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(redis_errors.ConnectionError, _on_store_unreachable)
    app.add_exception_handler(redis_errors.TimeoutError, _on_store_unreachable)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    # Anything else is answered by RequestContextMiddleware, which also logs it.
