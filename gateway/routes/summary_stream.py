"""One summary stream once its call is planned: the call started in one of the caller's
stream slots, its messages as Server-Sent Events kept for replay (``replay_stream``), and
the slot and the token budget settled when the generation ends."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Response
from grpc import aio

from gateway.backends import rpc_names
from gateway.edge import request_context
from gateway.errors.refusals import ApiError, Unavailable, envelope
from gateway.limits import generation
from gateway.pipeline import PlannedCall
from gateway.replay.events import ReplayEvent
from gateway.routes.replay_stream import first_message, generation_messages, start_generation
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


async def stream_summary(
    plan: PlannedCall, body: SummarizeBody, stream_token: str | None = None
) -> Response:
    """The stream of a planned summary, in a stream slot of the caller's."""
    tokens = await max_new_tokens(plan, body.max_new_tokens)
    lease = await generation.open_stream_slot(plan.state.limits, plan.caller)
    try:
        call = plan.endpoint.summarizer.open_summarize_stream(
            body.text,
            **(body.generation() | {"max_new_tokens": tokens}),
            model=plan.target.model,
            version=plan.target.version,
            request_id=plan.request_id,
            timeout_s=plan.timeout_s,
            metadata=plan.call_metadata(rpc_names.SUMMARIZE_STREAM),
        )
        started = time.perf_counter()
        first = await first_message(call, "summarizer", summarizer_pb2.SummarizeStreamResponse)
    except BaseException:
        generation.settle_stream_later(plan.state.limits, plan.caller, lease, 0)
        raise
    request_context.current().answered_by(first.model, first.version, time.perf_counter() - started)
    events = _events(plan, call, first, lease)
    return await start_generation(plan, "summary", events, lost_summary, stream_token)


def lost_summary(message: str) -> ReplayEvent:
    """The error event that ends a summary stream whose generation stopped early."""
    return _error_event(Unavailable(message))


async def _events(
    plan: PlannedCall,
    call: StreamCall,
    first: summarizer_pb2.SummarizeStreamResponse,
    lease: str | None,
) -> AsyncGenerator[ReplayEvent, None]:
    """The events of one summary: ``token``s, then ``done`` with the usage, or an
    ``error`` when the backend fails or the gateway drains. Closing it cancels the call."""
    request_id = request_context.current().trace.request_id
    async with contextlib.aclosing(generation_messages(plan, call, first, lease)) as messages:
        async for message in messages:
            if isinstance(message, ApiError):
                yield _error_event(message, request_id)
                return
            if message.text:
                event = TokenEvent(text=message.text, index=message.index)
                yield ReplayEvent(event.model_dump_json(), "token")
            if message.HasField("usage"):
                done = DoneEvent(
                    model=message.model,
                    version=message.version,
                    request_id=request_id,
                    usage=usage_from(message.usage),
                )
                yield ReplayEvent(done.model_dump_json(), "done", last=True)


def _error_event(error: ApiError, request_id: str | None = None) -> ReplayEvent:
    """A refusal as the stream's last event (its answer's status went out already)."""
    data = json.dumps(envelope(error.code, error.message, request_id))
    return ReplayEvent(data, "error", last=True)
