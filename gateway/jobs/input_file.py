"""A batch's input file checked before anything runs: every line a JSON object
``{"custom_id", "method": "POST", "url", "body"}`` whose ``url`` is the batch's endpoint,
no ``custom_id`` twice. The first bad line fails the batch with an error naming it (as
OpenAI's validation does); nothing of a batch that fails validation runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.jobs.files import FileStorage, lines

ENDPOINTS = ("/v1/classify", "/v1/ner", "/v1/summarize", "/v1/chat/completions", "/v1/completions")
"""The routes a batch may run: the gateway's model routes that answer one JSON body. A
line of the OpenAI routes that asks for ``"stream": true`` is not refused here: the route
answers it 400 (``param: stream``) into the error file, and the batch's other lines run."""


@dataclass(frozen=True)
class JobLine:
    custom_id: str
    url: str
    body: dict[str, Any]


class BadLine(Exception):
    def __init__(self, line: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.param = param

    def public(self) -> dict[str, Any]:
        return {
            "code": "invalid_request",
            "message": f"line {self.line}: {self.message}",
            "line": self.line,
            "param": self.param,
        }


def parse(number: int, raw: bytes, endpoint: str) -> JobLine:
    """One line (``number`` counts from 1); ``BadLine`` says what is wrong with it."""
    try:
        item = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadLine(number, "not valid JSON") from None
    if not isinstance(item, dict):
        raise BadLine(number, "not a JSON object")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise BadLine(number, "custom_id must be a non-empty string", "custom_id")
    if item.get("method") != "POST":
        raise BadLine(number, 'method must be "POST"', "method")
    url = item.get("url")
    if url != endpoint:
        shown = json.dumps(url)[:80]
        raise BadLine(number, f"url {shown} is not the batch's endpoint {endpoint}", "url")
    body = item.get("body")
    if not isinstance(body, dict):
        raise BadLine(number, "body must be a JSON object", "body")
    unknown = sorted(set(item) - {"custom_id", "method", "url", "body"})
    if unknown:
        raise BadLine(number, f"unknown field {unknown[0]!r}", unknown[0])
    return JobLine(custom_id, endpoint, body)


async def job_lines(storage: FileStorage, name: str, endpoint: str) -> AsyncIterator[JobLine]:
    """The input's lines, blank ones skipped, parsed (checked again as they are read)."""
    number = 0
    async for raw in lines(storage, name):
        number += 1
        if raw.strip():
            yield parse(number, raw, endpoint)


async def validate(storage: FileStorage, name: str, endpoint: str, most: int) -> int:
    """How many requests the input holds; ``BadLine`` for the first bad one, the first
    ``custom_id`` seen twice, more than ``most`` requests, or none."""
    seen: set[str] = set()
    number = 0
    async for raw in lines(storage, name):
        number += 1
        if not raw.strip():
            continue
        line = parse(number, raw, endpoint)
        if line.custom_id in seen:
            raise BadLine(number, f"custom_id {line.custom_id!r} was used before", "custom_id")
        seen.add(line.custom_id)
        if len(seen) > most:
            raise BadLine(number, f"a batch holds at most {most} requests")
    if not seen:
        raise BadLine(0, "the input file holds no requests")
    return len(seen)
