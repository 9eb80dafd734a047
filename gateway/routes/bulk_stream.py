"""One bulk NDJSON request once its call is planned: the body read line by line as it
arrives, each good line sent on the service's bidirectional stream with at most ``WINDOW``
texts in flight, each answer written as a line as soon as the service gives it (so in
completion order), and the daily quota taken a window of lines at a time.

Every line gets exactly one answer line: its result, or an error naming its ``id``. A
stream that cannot go on (the backend failed, the body grew past its limit, the quota's
store is unreachable with limits failing closed) ends with one line holding only
``error``; the lines without an answer then were not processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from fastapi import Request
from grpc import aio
from starlette.requests import ClientDisconnect

from gateway.errors.grpc_status import from_grpc
from gateway.errors.refusals import GENERIC_INTERNAL_MESSAGE, ApiError
from gateway.pipeline import PlannedCall
from gateway.routes.ndjson import LineSplitter, SpillBuffer, dumps

log = logging.getLogger(__name__)

WINDOW = 64
"""Texts sent to the service and not yet answered, at most; also the lines of daily quota
taken in one Redis call."""

LINE_OVERHEAD_BYTES = 1024
"""Room in a line for its ``id``, keys and spaces besides the text."""

BYTES_PER_CHAR = 12
"""The most bytes one character of text can take in JSON (``\\ud83c\\udf89``)."""

Id = str | int | float
StreamCall = aio.StreamStreamCall[Any, Any]


@dataclass(frozen=True)
class BulkService:
    """What differs between the bulk routes: the service, its stream, its result."""

    name: str
    open: Callable[[PlannedCall, float], StreamCall]
    """The bidirectional stream, with its deadline in seconds."""
    request: Callable[[PlannedCall, str, str], Any]
    """The stream's message for (the gateway's own id, the text)."""
    result: Callable[[Any], dict[str, Any]]
    """A result as the unary route gives it per text (``{"labels": [...]}``)."""


def error_line(code: str, message: str, line_id: Id | None = None) -> bytes:
    error = {"error": {"code": code, "message": message}}
    return dumps(error if line_id is None else {"id": line_id, **error})


def parse_line(number: int, raw: bytes | None, max_chars: int) -> tuple[Id, str | None, str]:
    """(id, text, "") of a good line; (id, None, why) of a bad one, whose id is the line's
    number when it cannot be read."""
    if raw is None:
        return number, None, f"line {number} is longer than a text of {max_chars} characters"
    try:
        item = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return number, None, f"line {number} is not JSON"
    if not isinstance(item, dict):
        return number, None, f"line {number} is not a JSON object"
    line_id = item.get("id", number)
    if isinstance(line_id, bool) or not isinstance(line_id, str | int | float):
        return number, None, f"line {number}: id must be a string or a number"
    text = item.get("text")
    unknown = sorted(set(item) - {"id", "text"})
    if unknown:
        return line_id, None, f"unknown field(s): {', '.join(unknown)}; give id and text"
    if not isinstance(text, str) or not text:
        return line_id, None, "text: give a non-empty string"
    if len(text) > max_chars:
        return line_id, None, f"text: longer than {max_chars} characters"
    return line_id, text, ""


class LineQuota:
    """The caller's daily quota, one unit per line, reserved ``WINDOW`` at a time; what was
    reserved and not used is given back at the end. The request's own count (made when it
    was planned) pays for its first line."""

    def __init__(self, plan: PlannedCall) -> None:
        self.plan = plan
        self.per_day = plan.caller.limits.per_day
        self.paid = 1
        """Lines the request's own count pays for."""
        self.held = 0
        """Units reserved and not used yet."""
        self.spent = False

    async def take(self) -> bool:
        if self.per_day is None:
            return True
        if self.paid:
            self.paid -= 1
            return True
        if not self.held and not self.spent:
            state, caller = self.plan.state, self.plan.caller
            try:
                self.held = await state.limiter.reserve_day(caller.id, self.per_day, WINDOW)
            except (redis.ConnectionError, redis.TimeoutError):
                state.limits.unreachable(caller, "daily quota")  # raises when failing closed
                self.held = WINDOW
            self.spent = self.held == 0
        if self.spent:
            return False
        self.held -= 1
        return True

    def message(self) -> str:
        return f"the day limit of {self.per_day} requests per day is spent (a line counts as one)"

    async def give_back(self) -> None:
        if self.per_day is None or not self.held:
            return
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
            caller = self.plan.caller
            await self.plan.state.limiter.reserve_day(caller.id, self.per_day, -self.held)


@dataclass
class Bulk:
    request: Request
    plan: PlannedCall
    service: BulkService
    call: StreamCall
    """The service's stream, opened (``BulkService.open``) before the answer starts."""
    max_chars: int
    max_body_bytes: int
    """0: no limit."""
    out: SpillBuffer

    async def run(self) -> None:
        """Fill ``out`` with the answer's lines, then close it."""
        call = self.call
        quota = LineQuota(self.plan)
        watcher: asyncio.Task[None] | None = None
        in_flight: dict[str, Id] = {}
        window = asyncio.Semaphore(WINDOW)
        try:
            async with asyncio.TaskGroup() as group:
                answers = group.create_task(self._answers(call, in_flight, window))
                too_large = await self._send(call, quota, in_flight, window)
                watcher = asyncio.create_task(self._watch(asyncio.current_task()))
                await answers
            if too_large:
                # The lines in flight were answered first; this line ends the stream.
                limit = self.max_body_bytes
                self.out.put(error_line("payload_too_large", f"the body passed {limit} bytes"))
        except ExceptionGroup as group:
            self._failed(_leaves(group))
        finally:
            call.cancel()
            if watcher is not None:
                watcher.cancel()
            try:
                await quota.give_back()
            finally:
                # Even if the answer's end cancels this: its reader must not wait forever.
                self.out.close()

    def _failed(self, errors: list[BaseException]) -> None:
        """One last line for the stream's failure: the backend's, else a refusal's; none
        when the client went away (nobody to read it)."""
        if any(isinstance(e, ClientDisconnect) for e in errors):
            return
        for error in errors:
            if isinstance(error, aio.AioRpcError):
                refusal = from_grpc(error, self.service.name)
                self.out.put(error_line(refusal.code, refusal.message))
                return
        for error in errors:
            if isinstance(error, ApiError):
                self.out.put(error_line(error.code, error.message))
                return
        log.error("bulk %s failed", self.service.name, exc_info=errors[0])
        self.out.put(error_line("internal", GENERIC_INTERNAL_MESSAGE))

    async def _send(
        self,
        call: StreamCall,
        quota: LineQuota,
        in_flight: dict[str, Id],
        window: asyncio.Semaphore,
    ) -> bool:
        """Read the body, answer its bad lines, send the good ones; whether the body
        passed its limit (and was left unread from there)."""
        overhead = LINE_OVERHEAD_BYTES
        splitter = LineSplitter(self.max_chars * BYTES_PER_CHAR + overhead)
        sent = 0
        seen = 0
        too_large = False
        limit = self.max_body_bytes
        async for chunk in self.request.stream():
            if limit and seen + len(chunk) > limit:
                # The lines whole within the limit are served; the rest is left unread.
                chunk = chunk[: limit - seen]
                too_large = True
            seen += len(chunk)
            for number, raw in splitter.feed(chunk):
                sent = await self._line(call, quota, in_flight, window, number, raw, sent)
            if too_large:
                break
        if not too_large:
            for number, raw in splitter.finish():
                sent = await self._line(call, quota, in_flight, window, number, raw, sent)
        await call.done_writing()
        return too_large

    async def _line(
        self,
        call: StreamCall,
        quota: LineQuota,
        in_flight: dict[str, Id],
        window: asyncio.Semaphore,
        number: int,
        raw: bytes | None,
        sent: int,
    ) -> int:
        line_id, text, why = parse_line(number, raw, self.max_chars)
        if text is None:
            self.out.put(error_line("invalid_argument", why, line_id))
            return sent
        if not await quota.take():
            self.out.put(error_line("rate_limited", quota.message(), line_id))
            return sent
        await window.acquire()
        # The service sees the gateway's own ids: the caller's may repeat or be numbers.
        key = str(sent)
        in_flight[key] = line_id
        await call.write(self.service.request(self.plan, key, text))
        return sent + 1

    async def _answers(
        self, call: StreamCall, in_flight: dict[str, Id], window: asyncio.Semaphore
    ) -> None:
        async for reply in call:
            line_id = in_flight.pop(reply.id)
            window.release()
            if reply.WhichOneof("outcome") == "error":
                self.out.put(error_line(reply.error.code.lower(), reply.error.message, line_id))
                continue
            result = self.service.result(reply.result)
            self.out.put(
                dumps({"id": line_id, "model": reply.model, "version": reply.version, **result})
            )

    async def _watch(self, work: asyncio.Task[Any] | None) -> None:
        """Once the body is read, the client's going away is the next thing ``receive``
        tells: the work is cancelled then."""
        while True:
            message = await self.request.receive()
            if message["type"] == "http.disconnect":
                if work is not None:
                    work.cancel()
                return


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found
