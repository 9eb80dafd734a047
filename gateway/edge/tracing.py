"""Request ids and W3C trace context (``traceparent``) for each request.

The caller's ``X-Request-ID`` is kept when it is sensible, otherwise a new one is made;
a valid incoming ``traceparent`` keeps its trace id and gets a new span (this gateway's
hop), otherwise a new trace starts. Both go to the backend as gRPC metadata.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    request_id: str
    traceparent: str

    def grpc_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", self.request_id), ("traceparent", self.traceparent))


def _random_hex(bits: int) -> str:
    # Ids must be unique, not secret: the seeded generator is enough, and unlike
    # ``secrets`` it costs no system call per request.
    return f"{random.getrandbits(bits):0{bits // 4}x}"


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is a sane token, else a fresh one."""
    if header and _REQUEST_ID.match(header):
        return header
    return _random_hex(128)


def traceparent_from(header: str | None) -> str:
    """This hop's ``traceparent``: the caller's trace continued, or a new sampled trace."""
    span = _random_hex(64)
    if header:
        match = _TRACEPARENT.match(header.strip().lower())
        if match and match.group(1) != _ZERO_TRACE and match.group(2) != _ZERO_SPAN:
            return f"00-{match.group(1)}-{span}-{match.group(3)}"
    return f"00-{_random_hex(128)}-{span}-01"


def trace_context(request_id_header: str | None, traceparent_header: str | None) -> TraceContext:
    return TraceContext(request_id_from(request_id_header), traceparent_from(traceparent_header))
