"""The one error envelope every failure is answered in.

``{"error": {"code": "...", "message": "...", "request_id": "..."}}``. Messages written
by Switchyard's services are meant for callers and pass through; anything unexpected
becomes a generic ``internal`` error, so no exception text or stack trace reaches a client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

from switchyard import logs

GENERIC_INTERNAL_MESSAGE = "internal error"


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


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
