"""``POST /v1/summarize`` (the whole summary) and ``/v1/summarize/stream`` (Server-Sent
Events, by POST with a JSON body or by GET for a browser's ``EventSource``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from grpc import aio
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway import generation_limits, request_context
from gateway.auth import Caller, unauthenticated
from gateway.bodies import (
    PINNED_PREFIX,
    VERSION_PIN_DOC,
    documented,
    documented_pinned,
    model_of,
    read_body,
    version_pin,
)
from gateway.errors import ApiError, envelope, from_grpc
from gateway.openapi import sse_content
from gateway.pipeline import PlannedCall, call_backend, plan_call
from gateway.responses import ERROR_RESPONSES, json_answer
from gateway.schemas import (
    DoneEvent,
    StreamQuery,
    StreamTokenAnswer,
    SummarizeAnswer,
    SummarizeBody,
    TokenEvent,
    Usage,
)
from gateway.state import gateway_state
from switchyard.summarizer.v1 import summarizer_pb2

router = APIRouter(prefix="/v1", tags=["models"], responses=ERROR_RESPONSES)

StreamCall = aio.UnaryStreamCall[
    summarizer_pb2.SummarizeStreamRequest, summarizer_pb2.SummarizeStreamResponse
]

_FINISH_REASONS: dict[int, Any] = {
    summarizer_pb2.FINISH_REASON_STOP: "stop",
    summarizer_pb2.FINISH_REASON_LENGTH: "length",
}

SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`token` events (`id` counts up; data: `TokenEvent`), then one"
        " `done` event with the usage (data: `DoneEvent`); an `error` event with the error"
        " envelope (data: `ErrorEnvelope`) if the model service fails mid-stream. Comments"
        " (`: ping`) keep the connection alive.",
        "content": sse_content("Server-Sent Events: `token`..., then `done` or `error`."),
    },
    204: {"description": "A reconnect (`Last-Event-ID`) of a stream that has ended."},
}


def usage_from(usage: summarizer_pb2.Usage) -> Usage:
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        generated_tokens=usage.generated_tokens,
        time_to_first_token_ms=usage.time_to_first_token.ToNanoseconds() / 1e6,
        generation_ms=usage.generation_time.ToNanoseconds() / 1e6,
        finish_reason=_FINISH_REASONS.get(usage.finish_reason, "unspecified"),
    )


@router.post(
    "/summarize",
    response_model=SummarizeAnswer,
    summary="Summarize a text",
    openapi_extra=documented(SummarizeBody),
)
@router.post(
    PINNED_PREFIX + "/summarize",
    response_model=SummarizeAnswer,
    summary="Summarize a text with a pinned model version",
    openapi_extra=documented_pinned(SummarizeBody),
)
async def summarize(request: Request) -> object:
    body = await read_body(request, SummarizeBody)
    model = model_of(request, body.model)
    plan = await plan_call(request, "summarizer", model, version_pin(request))
    max_new_tokens = await generation_limits.tokens_for(plan, body.max_new_tokens)
    reply = await call_backend(
        "summarizer",
        plan.endpoint.summarizer.summarize(
            body.text,
            **(body.generation() | {"max_new_tokens": max_new_tokens}),
            model=plan.target.model,
            version=plan.target.version,
            request_id=plan.request_id,
            timeout_s=plan.timeout_s,
            metadata=plan.metadata,
        ),
    )
    request_context.current().answered_by(reply.model, reply.version)
    await generation_limits.spend(plan, reply.usage.generated_tokens)
    return json_answer(
        SummarizeAnswer(
            model=reply.model,
            version=reply.version,
            request_id=plan.request_id,
            summary=reply.summary,
            usage=usage_from(reply.usage),
        )
    )


@router.post(
    "/summarize/stream",
    summary="Summarize a text, streamed token by token (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses=SSE_RESPONSES,
    openapi_extra=documented(SummarizeBody),
)
@router.post(
    PINNED_PREFIX + "/summarize/stream",
    summary="Summarize a text, streamed, with a pinned model version",
    response_class=EventSourceResponse,
    responses=SSE_RESPONSES,
    openapi_extra=documented_pinned(SummarizeBody),
)
async def summarize_stream_post(request: Request) -> Response:
    return await open_stream(request, await read_body(request, SummarizeBody))


@router.get(
    "/summarize/stream",
    summary="Summarize a text given in the query string, for EventSource",
    description="The same stream as the POST route, for browsers' `EventSource`, which can"
    " only GET. The text may be at most `max_query_text_chars` characters long (4096 by"
    " default); POST longer texts.",
    response_class=EventSourceResponse,
    responses=SSE_RESPONSES,
    openapi_extra=VERSION_PIN_DOC,
)
async def summarize_stream_get(
    query: Annotated[StreamQuery, Query()], request: Request
) -> Response:
    state = gateway_state(request)
    cap = state.settings.max_query_text_chars
    if len(query.text) > cap:
        raise ApiError(
            400,
            "invalid_argument",
            f"text: at most {cap} characters in a query string; POST longer texts",
        )
    caller = None
    if query.stream_token is not None and request.headers.get("last-event-id") is None:
        caller = await state.stream_tokens.redeem(query.stream_token)
        if caller is None:
            raise unauthenticated("the stream token is unknown, used or expired")
        if not await state.auth.still_valid(caller):
            raise unauthenticated("the API key the stream token was made with was revoked")
    body = SummarizeBody.model_validate(query.model_dump(exclude={"stream_token"}))
    return await open_stream(request, body, caller)


@router.post(
    "/summarize/stream-token",
    response_model=StreamTokenAnswer,
    summary="A single-use token that lets EventSource open one stream",
    description="EventSource cannot send an API key in a header: trade the key for a token"
    " that opens one `GET /v1/summarize/stream?stream_token=...` within a minute.",
)
async def stream_token(request: Request) -> StreamTokenAnswer:
    state = gateway_state(request)
    caller = await state.auth.authenticate(request, "client")
    request_context.current().caller = caller.id
    token = await state.stream_tokens.issue(caller)
    return StreamTokenAnswer(stream_token=token, expires_in_s=state.stream_tokens.ttl_s)


async def open_stream(
    request: Request, body: SummarizeBody, caller: Caller | None = None
) -> Response:
    # EventSource reconnects by itself after a stream ends; a generation cannot be
    # resumed, and starting a new one would repeat the text: 204 tells it to stop.
    if request.headers.get("last-event-id") is not None:
        return Response(status_code=204)
    model = model_of(request, body.model)
    plan = await plan_call(request, "summarizer", model, version_pin(request), caller)
    max_new_tokens = await generation_limits.tokens_for(plan, body.max_new_tokens)
    lease = await generation_limits.open_stream_slot(plan)
    try:
        return await _start_stream(plan, body, max_new_tokens, lease)
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
        raise ApiError(500, "internal", "the model service ended the stream without a summary")
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
        await generation_limits.close_stream_slot(plan, lease)
        await generation_limits.spend(plan, generated_tokens)

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
                    "unavailable", "the gateway is shutting down; send the request again"
                )
                return
            try:
                read = reading.result()
            except aio.AioRpcError as error:
                failure = from_grpc(error, "summarizer")
                yield _error_event(failure.code, failure.message, request_id)
                return
            if not isinstance(read, summarizer_pb2.SummarizeStreamResponse):  # the end
                yield _error_event("internal", "the stream ended before the summary was done")
                return
            message = read
    finally:
        drained.cancel()
        call.cancel()  # the client went away, or the stream failed: stop generating
        if reading is not None:
            reading.cancel()
        metrics.open_streams.dec()
        _settle_later(plan, lease, generated)


def _error_event(code: str, message: str, request_id: str | None = None) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(envelope(code, message, request_id)), event="error")
