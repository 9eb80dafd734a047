"""The single table from the error vocabulary to gRPC status codes."""

from __future__ import annotations

import grpc

from services.runtime.errors import (
    DeadlineExpired,
    InvalidInput,
    ModelNotFound,
    Overloaded,
    ServiceError,
    Unavailable,
)
from switchyard.client.config import RETRY_PUSHBACK_KEY

GENERIC_INTERNAL_MESSAGE = "internal error"

_CODES: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExpired: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code_for(error: ServiceError) -> grpc.StatusCode:
    """The gRPC status code that answers ``error``."""
    for kind in type(error).__mro__:
        code = _CODES.get(kind)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def trailing_metadata_for(error: ServiceError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata that goes with ``error``: the retry hint for an overload."""
    if isinstance(error, Overloaded):
        return ((RETRY_PUSHBACK_KEY, str(max(1, round(error.retry_after_s * 1000)))),)
    return ()
