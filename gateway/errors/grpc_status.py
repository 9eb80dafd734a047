"""The one table from a backend's gRPC status to the gateway's HTTP answer."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

from gateway.errors.refusals import GENERIC_INTERNAL_MESSAGE, ApiError
from switchyard.client.config import RETRY_PUSHBACK_KEY

log = logging.getLogger(__name__)

UNAVAILABLE_RETRY_AFTER_S = 1


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
