"""Every kind of refusal the gateway answers with, each defined once with its HTTP status,
its error code and what the OpenAPI document says of it; and the one envelope every
error is answered in.

A call site raises a refusal by name (``raise Gone(f"{model} {version} is retired")``)
and never writes a status or a code. ``gateway.routes.responses`` builds each route's
documented errors from the refusals the route declares.

``{"error": {"message", "type", "param", "code", "request_id"}}``: OpenAI's shape, so
that its SDKs raise the right error classes. ``code`` is the refusal's own code, ``type``
the class of error its status stands for, ``param`` the field at fault when one is known.
Messages written by Switchyard's services are meant for callers and pass through;
anything unexpected becomes a generic ``internal`` error, so no exception text or stack
trace reaches a client.

Every error answer also says whether sending the same request again may succeed
(``X-Should-Retry``, which OpenAI's SDKs follow before their own guesses): yes for an
overloaded or unavailable backend, a missed deadline, a per-minute limit and a stream
slot (whose Retry-After is short); no for
anything the caller must change first, a day's quota or token budget, an internal error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi.responses import JSONResponse

from switchyard import logs

GENERIC_INTERNAL_MESSAGE = "internal error"

REALM = 'Bearer realm="switchyard"'
"""The challenge of every 401 (``WWW-Authenticate``)."""


SHOULD_RETRY_HEADER = "X-Should-Retry"


class ApiError(Exception):
    """A refusal: answered with the class's status and code and the instance's message
    and headers. Raise one of the kinds below, never this class itself.

    ``param``: the request's field at fault, when one is. ``retry``: whether the same
    request may succeed later (the kind's ``retryable`` unless given)."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    description: ClassVar[str] = "An internal error; the details went to the log."
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        retry_after_s: int | None = None,
        param: str | None = None,
        retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.should_retry = self.retryable if retry is None else retry
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
        self.invalid = invalid


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


SHORT_RETRY_AFTER_S = 60
"""The longest Retry-After of a 429 worth waiting for (a per-minute limit's); a day's
quota or token budget is not retried by clients."""


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    description = (
        "The caller's rate limit or quota is spent, or their address presented too many"
        " invalid credentials; see Retry-After."
    )

    def __init__(
        self, message: str, *, retry_after_s: int | None = None, retry: bool | None = None
    ) -> None:
        """``retry``: unless given, whether ``retry_after_s`` is short enough to wait."""
        if retry is None:
            retry = retry_after_s is not None and retry_after_s <= SHORT_RETRY_AFTER_S
        super().__init__(message, retry_after_s=retry_after_s, retry=retry)


class ClientClosedRequest(ApiError):
    """Never read by anyone: the status the access log records for an abandoned call."""

    status = 499
    code = "client_closed_request"
    description = "The client went away before the answer; its work was stopped."


class Internal(ApiError):
    """Anything unexpected, told with ``GENERIC_INTERNAL_MESSAGE`` (the details are logged)."""


class Overloaded(ApiError):
    status = 503
    retryable = True
    code = "overloaded"
    description = "The model service is overloaded; see Retry-After."


class Unavailable(ApiError):
    status = 503
    retryable = True
    code = "unavailable"
    description = (
        "The model service, the shared store or the gateway (draining) is unavailable;"
        " see Retry-After."
    )


class DeadlineExceeded(ApiError):
    status = 504
    retryable = True
    code = "deadline_exceeded"
    description = "The model service did not answer within the time budget."


def _kinds(kind: type[ApiError]) -> list[type[ApiError]]:
    return [kind, *(k for sub in kind.__subclasses__() for k in _kinds(sub))]


_STATUS_OF_CODE: dict[str, int] = {kind.code: kind.status for kind in _kinds(ApiError)}

_ERROR_TYPES: dict[int, str] = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    410: "not_found_error",
    429: "rate_limit_error",
}
"""OpenAI's error types by status; any other 4xx is ``invalid_request_error`` (400, 405,
413, 415, 499) and a 5xx ``server_error``."""

RETRIED_STATUSES = frozenset({503, 504})
"""Statuses worth sending again as they are, when nothing more is known."""


def error_type(status: int) -> str:
    """The OpenAI error ``type`` an answer of ``status`` has."""
    if status >= 500:
        return "server_error"
    return _ERROR_TYPES.get(status, "invalid_request_error")


def envelope(
    code: str,
    message: str,
    request_id: str | None = None,
    *,
    param: str | None = None,
    status: int | None = None,
) -> dict[str, Any]:
    """The error as every answer and stream tells it. ``status``: the answer's, when
    ``code`` is not a refusal's own (whose status it is otherwise)."""
    shown = status if status is not None else _STATUS_OF_CODE.get(code, 500)
    return {
        "error": {
            "message": message,
            "type": error_type(shown),
            "param": param,
            "code": code,
            "request_id": request_id if request_id is not None else logs.request_id.get(),
        }
    }


def json_error(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    param: str | None = None,
    retry: bool | None = None,
) -> JSONResponse:
    """An error answer; ``retry`` (``X-Should-Retry``) unless given: whether ``status``
    is one of ``RETRIED_STATUSES``."""
    should_retry = status in RETRIED_STATUSES if retry is None else retry
    return JSONResponse(
        envelope(code, message, param=param, status=status),
        status_code=status,
        headers={**(headers or {}), SHOULD_RETRY_HEADER: "true" if should_retry else "false"},
    )


def error_response(error: ApiError) -> JSONResponse:
    return json_error(
        error.status,
        error.code,
        error.message,
        error.headers,
        param=error.param,
        retry=error.should_retry,
    )
