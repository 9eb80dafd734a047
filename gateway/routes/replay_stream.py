"""What every streamed generation route shares: its first message read before the answer
starts (so that a failure to start is an HTTP status), the generation handed to the
replay hub, the Server-Sent Events read back from it, and a reconnect's resume.

Every event goes out with the id ``<generation>.<index>``. A client that lost its
connection sends its request again with that id as ``Last-Event-ID`` (a browser's
EventSource does so by itself), to any replica, and gets what followed it and then the
live tail. Only the caller who started the stream may resume it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from fastapi import Request, Response
from grpc import aio
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway.edge import request_context
from gateway.errors.grpc_status import from_grpc
from gateway.errors.refusals import (
    ApiError,
    Internal,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
)
from gateway.limits import generation
from gateway.pipeline import PlannedCall
from gateway.replay.events import (
    LostEvent,
    ReplayEvent,
    StreamOwner,
    credential_of,
    event_id,
    new_generation_id,
    parse_event_id,
)
from gateway.state import GatewayState
from switchyard.summarizer.v1 import summarizer_pb2

M = TypeVar("M")


async def first_message(
    call: aio.UnaryStreamCall[Any, M], service: str, message_type: type[M]
) -> M:
    """The stream's first message, or the HTTP refusal its failure maps to."""
    try:
        first = await call.read()
    except aio.AioRpcError as error:
        raise from_grpc(error, service) from None
    except BaseException:
        call.cancel()
        raise
    if not isinstance(first, message_type):  # the end of the stream
        raise Internal("the model service ended the stream before its first message")
    return first


Message = TypeVar(
    "Message", summarizer_pb2.SummarizeStreamResponse, summarizer_pb2.GenerateResponse
)


async def generation_messages(
    plan: PlannedCall,
    call: aio.UnaryStreamCall[Any, Message],
    first: Message,
    lease: str | None,
) -> AsyncGenerator[Message | ApiError, None]:
    """A generation's messages from ``first`` to the one with the usage, or up to the
    refusal that ends it early (the backend failing, the gateway draining), which comes
    last. The caller's stream slot and tokens (as the service counts them) are settled
    before that last item, so the caller's next call sees them. Closing this (the
    generation given up) cancels the call."""
    state = plan.state
    metrics = state.metrics
    settlement = generation.StreamSettlement(state.limits, plan.caller, lease)
    metrics.open_streams.inc()
    pieces = metrics.streamed_tokens.labels(first.model, first.version)
    drained = asyncio.ensure_future(state.drain.started.wait())
    try:
        message = first
        while True:
            settlement.generated_tokens = max(settlement.generated_tokens, message.generated_tokens)
            if message.text:
                pieces.inc()
            if message.HasField("usage"):
                settlement.generated_tokens = message.usage.generated_tokens
                await settlement.now()
                yield message
                return
            yield message
            found = await _next_message(call, drained, type(first))
            if isinstance(found, ApiError):
                await settlement.now()
                yield found
                return
            message = found
    finally:
        drained.cancel()
        call.cancel()  # the generation ended, failed or was given up: stop generating
        metrics.open_streams.dec()
        settlement.later()


async def _next_message(
    call: aio.UnaryStreamCall[Any, M],
    drained: asyncio.Future[Any],
    message_type: type[M],
    service: str = "summarizer",
) -> M | ApiError:
    """The stream's next message, or the refusal that ends it: the gateway draining, the
    backend failing, or the stream ending before its last message."""
    reading = asyncio.ensure_future(call.read())
    await asyncio.wait((reading, drained), return_when=asyncio.FIRST_COMPLETED)
    if not reading.done():
        reading.cancel()
        return Unavailable("the gateway is shutting down; send the request again")
    try:
        read = reading.result()
    except aio.AioRpcError as error:
        return from_grpc(error, service)
    if not isinstance(read, message_type):  # the end of the stream
        return Internal("the stream ended before the generation was done")
    return read


async def start_generation(
    plan: PlannedCall,
    kind: str,
    events: AsyncGenerator[ReplayEvent, None],
    lost: LostEvent,
    stream_token: str | None = None,
) -> Response:
    """Run a generation (its events from ``events``) in the replay hub, and answer with
    its stream from the start."""
    state = plan.state
    name = new_generation_id()
    credential = credential_of(stream_token) if stream_token else ""
    await state.replay.start(name, StreamOwner(plan.caller.id, kind, credential), events, lost)
    return await answer_from(state, name, -1, lost)


async def resume(
    request: Request,
    state: GatewayState,
    kind: str,
    lost: LostEvent,
    stream_token: str | None = None,
) -> Response:
    """The rest of the stream a ``Last-Event-ID`` names; 204 when it has ended (or was
    never one of ours), which tells EventSource to stop reconnecting."""
    parsed = parse_event_id(request.headers.get("last-event-id", ""))
    if parsed is None:
        return Response(status_code=204)
    name, after = parsed
    owner = await state.replay.owner(name)
    if owner is None:
        return Response(status_code=204)
    if not (stream_token and credential_of(stream_token) == owner.credential):
        caller = await state.auth.authenticate(request, "client")
        request_context.current().caller = caller.id
        if caller.id != owner.caller:
            raise PermissionDenied(
                "this stream was started by another caller; only they may resume it"
            )
    if owner.kind != kind:
        raise InvalidArgument(
            f"this is a {owner.kind} stream: resume it on the route that started it"
        )
    return await answer_from(state, name, after, lost)


async def answer_from(state: GatewayState, name: str, after: int, lost: LostEvent) -> Response:
    events = state.replay.read(name, after, lost)
    first = await anext(events, None)
    if first is None:
        return Response(status_code=204)
    request_context.current().stream = True
    return EventSourceResponse(
        _sent(name, first, events),
        ping=state.settings.sse_heartbeat_s,
        ping_message_factory=KeepAlive,
        headers={"Cache-Control": "no-cache"},
    )


class KeepAlive(ServerSentEvent):
    """A comment line that keeps the connection open and dispatches no event.

    A lone ``: ping`` line, never followed by a blank line: SSE parsers keep the last
    event id, and a blank line after a comment makes them dispatch an event with that id
    and empty data, which OpenAI's SDKs fail to parse."""

    def encode(self) -> bytes:
        return b": ping\r\n"


async def _sent(
    name: str, first: ReplayEvent, rest: AsyncGenerator[ReplayEvent, None]
) -> AsyncIterator[ServerSentEvent]:
    # Closing this (the client went away) closes the read, so the generation's grace
    # period counts from here; the generation itself runs on.
    async with contextlib.aclosing(rest):
        yield sse_event(name, first)
        async for event in rest:
            yield sse_event(name, event)


def sse_event(name: str, event: ReplayEvent) -> ServerSentEvent:
    """An event of generation ``name`` as it goes out."""
    return ServerSentEvent(event.data, event=event.event, id=event_id(name, event.index))
