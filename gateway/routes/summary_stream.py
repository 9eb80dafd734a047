"""One summary stream once its call is planned: the call started (its first piece read
before the answer begins, so a failure to start is an HTTP status), the Server-Sent
Events, and the caller's stream slot and token budget settled when it ends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Response
from grpc import aio
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway.edge import request_context
from gateway.errors.grpc_status import from_grpc
from gateway.errors.refusals import ApiError, Internal, Unavailable, envelope
from gateway.limits import generation
from gateway.pipeline import PlannedCall
from gateway.routes.schemas import DoneEvent, SummarizeBody, TokenEvent, Usage
from switchyard.summarizer.v1 import summarizer_pb2

StreamCall = aio.UnaryStreamCall[
    summarizer_pb2.SummarizeStreamRequest, summarizer_pb2.SummarizeStreamResponse
]

_FINISH_REASONS: dict[int, Any] = {
    summarizer_pb2.FINISH_REASON_STOP: "stop",
    summarizer_pb2.FINISH_REASON_LENGTH: "length",
}


def usage_from(usage: summarizer_pb2.Usage) -> Usage:
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        generated_tokens=usage.generated_tokens,
        time_to_first_token_ms=usage.time_to_first_token.ToNanoseconds() / 1e6,
        generation_ms=usage.generation_time.ToNanoseconds() / 1e6,
        finish_reason=_FINISH_REASONS.get(usage.finish_reason, "unspecified"),
    )


def model_default_tokens(plan: PlannedCall) -> int | None:
    """The ``max_new_tokens`` the planned version's backends list as its default."""
    for info in plan.state.backends.models("summarizer"):
        if info.name != plan.target.model:
            continue
        for version in info.versions:
            if version.version == plan.target.version:
                value = version.annotations.get("default_max_new_tokens")
                return int(value) if value else None
    return None


async def max_new_tokens(plan: PlannedCall, requested: int) -> int:
    """The tokens the summary may generate, within the caller's tier and budget."""
    return await generation.tokens_for(
        plan.state.limits, plan.caller, requested, lambda: model_default_tokens(plan)
    )


async def stream_summary(plan: PlannedCall, body: SummarizeBody) -> Response:
    """The stream of a planned summary, in a stream slot of the caller's."""
    tokens = await max_new_tokens(plan, body.max_new_tokens)
    lease = await generation.open_stream_slot(plan.state.limits, plan.caller)
    try:
        return await _start_stream(plan, body, tokens, lease)
    except BaseException:
        _settle_later(plan, lease, 0)
        raise


async def _start_stream(
    plan: PlannedCall, body: SummarizeBody, max_new_tokens: int, lease: str | None
) -> Response:
    state = plan.state
    call = plan.endpoint.summarizer.open_summarize_stream(
        body.text,
        **(body.generation() | {"max_new_tokens": max_new_tokens}),
        model=plan.target.model,
        version=plan.target.version,
        request_id=plan.request_id,
        timeout_s=plan.timeout_s,
        metadata=plan.metadata,
    )
    # The first piece arrives before the response starts, so that a failure to start
    # (unknown version, full queue, service down) is an HTTP status, not an event.
    started = time.perf_counter()
    try:
        first = await call.read()
    except aio.AioRpcError as error:
        raise from_grpc(error, "summarizer") from None
    except BaseException:
        call.cancel()
        raise
    if not isinstance(first, summarizer_pb2.SummarizeStreamResponse):  # the end of the stream
        raise Internal("the model service ended the stream without a summary")
    record = request_context.current()
    record.answered_by(first.model, first.version, time.perf_counter() - started)
    record.stream = True
    return EventSourceResponse(
        _events(plan, call, first, lease),
        ping=state.settings.sse_heartbeat_s,
        headers={"Cache-Control": "no-cache"},
    )


_settling: set[asyncio.Task[None]] = set()


def _settle_later(plan: PlannedCall, lease: str | None, generated_tokens: int) -> None:
    """Give the stream slot back and count the tokens, in a task of its own: this runs
    when a stream ends, perhaps because its task is being cancelled."""

    async def settle() -> None:
        await generation.close_stream_slot(plan.state.limits, plan.caller, lease)
        await generation.spend(plan.state.limits, plan.caller, generated_tokens)

    task = asyncio.get_running_loop().create_task(settle())
    _settling.add(task)
    task.add_done_callback(_settling.discard)


async def _events(
    plan: PlannedCall,
    call: StreamCall,
    first: summarizer_pb2.SummarizeStreamResponse,
    lease: str | None,
) -> AsyncIterator[ServerSentEvent]:
    """The SSE events of one stream; ends early, with an error event, when the backend
    fails or the gateway drains. Closing it (the client went away) cancels the call."""
    state = plan.state
    metrics = state.metrics
    generated = 0
    request_id = request_context.current().trace.request_id
    metrics.open_streams.inc()
    drained = asyncio.ensure_future(state.drain.started.wait())
    tokens = metrics.streamed_tokens.labels(first.model, first.version)
    reading: asyncio.Future[object] | None = None
    try:
        message = first
        while True:
            generated = message.index + 1
            if message.text:
                tokens.inc()
                yield ServerSentEvent(
                    TokenEvent(text=message.text, index=message.index).model_dump_json(),
                    event="token",
                    id=str(message.index),
                )
            if message.HasField("usage"):
                generated = message.usage.generated_tokens
                done = DoneEvent(
                    model=message.model,
                    version=message.version,
                    request_id=request_id,
                    usage=usage_from(message.usage),
                )
                yield ServerSentEvent(done.model_dump_json(), event="done")
                return
            reading = asyncio.ensure_future(call.read())
            await asyncio.wait((reading, drained), return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                yield _error_event(
                    Unavailable("the gateway is shutting down; send the request again")
                )
                return
            try:
                read = reading.result()
            except aio.AioRpcError as error:
                yield _error_event(from_grpc(error, "summarizer"), request_id)
                return
            if not isinstance(read, summarizer_pb2.SummarizeStreamResponse):  # the end
                yield _error_event(Internal("the stream ended before the summary was done"))
                return
            message = read
    finally:
        drained.cancel()
        call.cancel()  # the client went away, or the stream failed: stop generating
        if reading is not None:
            reading.cancel()
        metrics.open_streams.dec()
        _settle_later(plan, lease, generated)


def _error_event(error: ApiError, request_id: str | None = None) -> ServerSentEvent:
    """A refusal as the stream's last event (its answer's status went out already)."""
    return ServerSentEvent(
        json.dumps(envelope(error.code, error.message, request_id)), event="error"
    )
