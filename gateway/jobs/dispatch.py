"""A batch's line sent through the gateway's own route, in this process: the same
validation, routing, cache, limits on tokens and answers as a request from outside, as
the caller who created the batch (``gateway.access.internal``), without a network hop.

Answers of 503 and 504 (a backend restarting or overloaded, this replica draining, a low
priority call that waited past its deadline) are not the line's fault: the line is sent
again after a pause, and when it still cannot be answered the batch stops here without a
checkpoint (``Interrupted``), to go on later on this replica or another.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp

from gateway.access.internal import INTERNAL_CALLER_HEADER
from gateway.jobs.input_file import JobLine

RETRIED_STATUSES = frozenset({503, 504})
ATTEMPTS = 4
FIRST_PAUSE_S = 0.5


class Interrupted(Exception):
    """A line could not be answered now; the batch goes on later from its checkpoint."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    request_id: str
    body: Any


def request_line_id(batch_id: str, custom_id: str) -> str:
    """The same id for the same line whichever replica answers it."""
    digest = hashlib.sha256(f"{batch_id}\n{custom_id}".encode()).hexdigest()
    return f"batch_req_{digest[:24]}"


def answer_line(batch_id: str, line: JobLine, answer: Answer) -> dict[str, Any]:
    """The output (or error) file's line for a line the route answered."""
    error = None
    if not 200 <= answer.status_code < 300:
        envelope = answer.body.get("error") if isinstance(answer.body, dict) else None
        if isinstance(envelope, dict):
            error = {"code": envelope.get("code"), "message": envelope.get("message")}
        else:
            error = {"code": "http_error", "message": f"HTTP {answer.status_code}"}
    return {
        "id": request_line_id(batch_id, line.custom_id),
        "custom_id": line.custom_id,
        "response": {
            "status_code": answer.status_code,
            "request_id": answer.request_id,
            "body": answer.body,
        },
        "error": error,
    }


def error_line(batch_id: str, line: JobLine, code: str, message: str) -> dict[str, Any]:
    """The error file's line for a line that was not sent (quota spent, batch expired)."""
    return {
        "id": request_line_id(batch_id, line.custom_id),
        "custom_id": line.custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


class InProcessSender:
    def __init__(self, app: ASGIApp, pause_s: float = FIRST_PAUSE_S) -> None:
        # raise_app_exceptions off: a failure the app did not handle comes back as the
        # 500 answer a client would get, and fails that line only.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        # No client timeout: each route bounds its own call (its gRPC deadline).
        self.client = httpx.AsyncClient(
            transport=transport,
            base_url="http://gateway.internal",
            timeout=None,  # noqa: S113
        )
        self.pause_s = pause_s

    async def send(self, line: JobLine, token: str) -> Answer:
        headers = {INTERNAL_CALLER_HEADER: token}
        pause = self.pause_s
        for attempt in range(ATTEMPTS):
            reply = await self.client.post(line.url, json=line.body, headers=headers)
            if reply.status_code not in RETRIED_STATUSES:
                break
            if attempt + 1 == ATTEMPTS:
                raise Interrupted(f"{line.url} answered {reply.status_code} {ATTEMPTS} times")
            await asyncio.sleep(pause)
            pause *= 2
        try:
            body = reply.json()
        except ValueError:
            body = reply.text
        return Answer(reply.status_code, reply.headers.get("x-request-id", ""), body)

    async def aclose(self) -> None:
        await self.client.aclose()
