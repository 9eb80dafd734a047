"""The one table from a backend's gRPC status to the gateway's refusal (and so to HTTP)."""

from __future__ import annotations

import logging
import math
from typing import Any

import grpc
from grpc import aio

from gateway.errors.refusals import (
    GENERIC_INTERNAL_MESSAGE,
    ApiError,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    Overloaded,
    Unavailable,
)
from switchyard.client.config import RETRY_PUSHBACK_KEY

log = logging.getLogger(__name__)

UNAVAILABLE_RETRY_AFTER_S = 1

_GRPC_TO_HTTP: dict[grpc.StatusCode, tuple[type[ApiError], bool]] = {
    # status: (refusal, whether the service's message is meant for callers)
    grpc.StatusCode.INVALID_ARGUMENT: (InvalidArgument, True),
    grpc.StatusCode.OUT_OF_RANGE: (InvalidArgument, True),
    grpc.StatusCode.NOT_FOUND: (NotFound, True),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (Overloaded, True),
    grpc.StatusCode.UNAVAILABLE: (Unavailable, False),
    grpc.StatusCode.DEADLINE_EXCEEDED: (DeadlineExceeded, False),
}
_DEFAULT_MESSAGES: dict[type[ApiError], str] = {
    Unavailable: "the model service is unavailable; retry shortly",
    DeadlineExceeded: "the model service did not answer within the request's time budget",
}


def from_grpc(error: aio.AioRpcError, service: str) -> ApiError:
    """The HTTP answer to a failed backend call."""
    code = error.code()
    kind, passes_message = _GRPC_TO_HTTP.get(code, (Internal, False))
    if kind is Internal:
        log.error("%s answered %s: %s", service, code.name, error.details())
    message = (
        str(error.details())
        if passes_message and error.details()
        else _DEFAULT_MESSAGES.get(kind, GENERIC_INTERNAL_MESSAGE)
    )
    retry_after_s: int | None = None
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry_after_s = _retry_after_s(error)
    elif code is grpc.StatusCode.UNAVAILABLE:
        retry_after_s = UNAVAILABLE_RETRY_AFTER_S
    return kind(message, retry_after_s=retry_after_s)


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
