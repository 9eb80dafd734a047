"""Every kind of refusal the gateway answers with, each defined once with its HTTP status,
its error code and what the OpenAPI document says of it; and the one envelope every
error is answered in.

A call site raises a refusal by name (``raise Gone(f"{model} {version} is retired")``)
and never writes a status or a code. ``gateway.routes.responses`` builds each route's
documented errors from the refusals the route declares.

``{"error": {"code": "...", "message": "...", "request_id": "..."}}``. Messages written
by Switchyard's services are meant for callers and pass through; anything unexpected
becomes a generic ``internal`` error, so no exception text or stack trace reaches a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi.responses import JSONResponse

from switchyard import logs

GENERIC_INTERNAL_MESSAGE = "internal error"

REALM = 'Bearer realm="switchyard"'
"""The challenge of every 401 (``WWW-Authenticate``)."""


class ApiError(Exception):
    """A refusal: answered with the class's status and code and the instance's message
    and headers. Raise one of the kinds below, never this class itself."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    description: ClassVar[str] = "An internal error; the details went to the log."

    def __init__(
        self,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = {}
        if retry_after_s is not None:
            self.headers["Retry-After"] = str(retry_after_s)
        self.headers.update(headers or {})


class InvalidArgument(ApiError):
    status = 400
    code = "invalid_argument"
    description = "Invalid input: malformed JSON, wrong types, missing or unknown fields."


class Unauthenticated(ApiError):
    status = 401
    code = "unauthenticated"
    description = "No credential, or one that is not valid (see WWW-Authenticate)."

    def __init__(self, message: str, *, invalid: bool = True) -> None:
        """``invalid``: a credential was presented and refused (else none was sent)."""
        challenge = f'{REALM}, error="invalid_token"' if invalid else REALM
        super().__init__(message, {"WWW-Authenticate": challenge})


class PermissionDenied(ApiError):
    status = 403
    code = "permission_denied"
    description = "The caller lacks the role this needs."


class NotFound(ApiError):
    status = 404
    code = "not_found"
    description = "No such model, version, key or backend."


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"
    description = "Not a method of this path (see Allow)."


class AlreadyExists(ApiError):
    status = 409
    code = "already_exists"
    description = "What the request would add is there already."


class FailedPrecondition(ApiError):
    status = 409
    code = "failed_precondition"
    description = "The change cannot apply now (the message says why); nothing was changed."


class Gone(ApiError):
    status = 410
    code = "gone"
    description = "The version was retired."


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"
    description = "The body is larger than the gateway accepts."


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"
    description = "The body is not declared as JSON."


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    description = "The caller's rate limit or quota is spent; see Retry-After."


class ClientClosedRequest(ApiError):
    """Never read by anyone: the status the access log records for an abandoned call."""

    status = 499
    code = "client_closed_request"
    description = "The client went away before the answer; its work was stopped."


class Internal(ApiError):
    """Anything unexpected, told with ``GENERIC_INTERNAL_MESSAGE`` (the details are logged)."""


class Overloaded(ApiError):
    status = 503
    code = "overloaded"
    description = "The model service is overloaded; see Retry-After."


class Unavailable(ApiError):
    status = 503
    code = "unavailable"
    description = (
        "The model service, the shared store or the gateway (draining) is unavailable;"
        " see Retry-After."
    )


class DeadlineExceeded(ApiError):
    status = 504
    code = "deadline_exceeded"
    description = "The model service did not answer within the time budget."


def envelope(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "request_id": request_id if request_id is not None else logs.request_id.get(),
        }
    }


def json_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(envelope(code, message), status_code=status, headers=headers)


def error_response(error: ApiError) -> JSONResponse:
    return json_error(error.status, error.code, error.message, error.headers)
