"""``POST /v1/chat/completions`` and ``/v1/completions``: OpenAI's API over the
summarizer's ``Generate``, so that OpenAI's SDKs work unchanged against the gateway.

Each request takes the native routes' path: the pipeline (auth, limits, routing, pins,
canaries), the tier's cap on tokens and the day's token budget, a stream slot for a
stream. A chat's messages go through the model's chat template; a completion's prompt
is continued as it is. A whole answer waits for the generation unless the client leaves
(which cancels it); a stream's first message is read before the answer starts, so that a
failure to start is an HTTP status, not an event, and the stream is kept for replay: a
reconnect with ``Last-Event-ID`` resumes it (``replay_stream``).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Request, Response
from grpc import aio

from gateway.backends import rpc_names
from gateway.edge import request_context
from gateway.edge.disconnect import unless_client_leaves
from gateway.errors.refusals import ApiError, Internal, InvalidArgument, envelope
from gateway.limits import generation
from gateway.pipeline import ModelCall, PlannedCall, call_backend, plan_call
from gateway.routes.bodies import documented, read_body, version_pin
from gateway.routes.deps import State
from gateway.routes.openai_schemas import (
    AssistantMessage,
    ChatBody,
    ChatChoice,
    ChatCompletion,
    CompletionBody,
    CompletionUsage,
    TextChoice,
    TextCompletion,
)
from gateway.routes.openai_stream import (
    DONE,
    Completion,
    CompletionChunks,
    Payload,
    finish_reason,
    lost_completion,
    payload_events,
    usage_of,
)
from gateway.routes.replay_stream import (
    first_message,
    generation_messages,
    resume,
    start_generation,
)
from gateway.routes.responses import CALLER, JSON_BODY, MODEL_CALL, Responses, json_answer, refusals
from gateway.routes.summary_stream import max_new_tokens
from gateway.state import GatewayState
from switchyard.summarizer.v1 import summarizer_pb2

router = APIRouter(prefix="/v1", tags=["openai"])

GenerateCall = aio.UnaryStreamCall[summarizer_pb2.GenerateRequest, summarizer_pb2.GenerateResponse]
Body = ChatBody | CompletionBody


def _answers(chunk: str) -> Responses:
    stream = {
        "description": f"With `stream: true`: `data:` events, each a `{chunk}` object (the"
        " last with `finish_reason`; with `stream_options.include_usage`, then one with"
        " `choices: []` and the usage), then `data: [DONE]`; or, if the model service fails"
        " mid-stream, one event with the error envelope instead. Each event's `id` is"
        " `<generation>.<n>`: the same request sent again with the last one seen as"
        " `Last-Event-ID` resumes the stream. `: ping` comment lines keep it alive.",
        "type": "object",
        "required": ["data"],
        "properties": {"id": {"type": "string"}, "data": {"type": "string"}},
    }
    return {
        200: {
            "description": "The completion, or its stream.",
            "content": {"text/event-stream": {"schema": stream}},
        },
        **refusals(*CALLER, *JSON_BODY, *MODEL_CALL),
    }


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    summary="A chat completion (OpenAI-compatible), whole or streamed",
    responses=_answers("chat.completion.chunk"),
    openapi_extra=documented(ChatBody),
)
async def chat_completions(request: Request, state: State) -> Response:
    return await complete(request, state, await read_body(request, ChatBody))


@router.post(
    "/completions",
    response_model=TextCompletion,
    summary="A completion of a prompt (OpenAI-compatible), whole or streamed",
    responses=_answers("text_completion"),
    openapi_extra=documented(CompletionBody),
)
async def completions(request: Request, state: State) -> Response:
    return await complete(request, state, await read_body(request, CompletionBody))


async def complete(request: Request, state: GatewayState, body: Body) -> Response:
    """One completion, from the checked body to the answer or the stream."""
    body.check()
    if body.stream and state.auth.is_batch_line(request):
        raise InvalidArgument("stream: a batch's requests are answered whole", param="stream")
    if body.stream and request.headers.get("last-event-id") is not None:
        # A reconnect resumes the generation it names, rather than starting another one.
        return await resume(request, state, _kind(isinstance(body, ChatBody)), lost_completion)
    plan = await plan_call(
        request, state, ModelCall("summarizer", body.model, version_pin(request))
    )
    tokens = await _max_new_tokens(plan, body)
    chat = isinstance(body, ChatBody)
    completion = Completion(
        f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
        chat,
        int(time.time()),
        body.include_usage(),
    )
    if body.stream:
        return await _stream(plan, body, tokens, completion)
    # An abandoned completion stops generating, rather than holding the model to its end.
    last, text = await unless_client_leaves(
        request, call_backend("summarizer", _whole(_open(plan, body, tokens)))
    )
    request_context.current().answered_by(last.model, last.version)
    await generation.spend(plan.state.limits, plan.caller, last.usage.generated_tokens)
    return json_answer(_answer(completion, last, text))


async def _max_new_tokens(plan: PlannedCall, body: Body) -> int:
    """The tokens to generate, within the tier's cap (400 naming the body's field) and
    the day's budget."""
    field, requested = body.requested_tokens()
    cap = plan.caller.limits.max_new_tokens
    if requested > cap:
        message = f"{field}: is {requested}; the {plan.caller.tier} tier allows at most {cap}"
        raise InvalidArgument(message, param=field)
    return await max_new_tokens(plan, requested)


def _open(plan: PlannedCall, body: Body, tokens: int) -> GenerateCall:
    return plan.endpoint.summarizer.open_generate(
        **body.source(),
        **body.generation(),
        max_new_tokens=tokens,
        model=plan.target.model,
        version=plan.target.version,
        request_id=plan.request_id,
        timeout_s=plan.timeout_s,
        metadata=plan.call_metadata(rpc_names.GENERATE),
    )


async def _whole(call: GenerateCall) -> tuple[summarizer_pb2.GenerateResponse, str]:
    """The last message of a generation (with its usage) and the whole text."""
    pieces = []
    try:
        async for message in call:
            pieces.append(message.text)
            if message.HasField("usage"):
                return message, "".join(pieces)
    finally:
        call.cancel()  # a no-op once it ended; stops the generation if this was cancelled
    raise Internal("the model service ended the generation without its usage")


def _answer(
    completion: Completion, last: summarizer_pb2.GenerateResponse, text: str
) -> ChatCompletion | TextCompletion:
    common: dict[str, Any] = {
        "id": completion.id,
        "created": completion.created,
        "model": last.model,
        "system_fingerprint": last.version,
        "usage": CompletionUsage(**usage_of(last.usage)),
    }
    reason = finish_reason(last.usage)
    if completion.chat:
        message = AssistantMessage(content=text)
        choice = ChatChoice(message=message, finish_reason=reason)
        return ChatCompletion(**common, choices=[choice])
    return TextCompletion(
        **common,
        choices=[TextChoice(text=text, finish_reason=reason)],
    )


async def _stream(plan: PlannedCall, body: Body, tokens: int, completion: Completion) -> Response:
    """The stream of a planned completion, in a stream slot of the caller's, run as a
    generation that a reconnect may resume."""
    limits = plan.state.limits
    lease = await generation.open_stream_slot(limits, plan.caller)
    started = time.perf_counter()
    try:
        call = _open(plan, body, tokens)
        first = await first_message(call, "summarizer", summarizer_pb2.GenerateResponse)
    except BaseException:
        generation.settle_stream_later(limits, plan.caller, lease, 0)
        raise
    request_context.current().answered_by(first.model, first.version, time.perf_counter() - started)
    payloads = _payloads(plan, call, first, CompletionChunks(completion), lease)
    kind = _kind(completion.chat)
    return await start_generation(plan, kind, payload_events(payloads), lost_completion)


def _kind(chat: bool) -> str:
    """The kind of stream a route's generations are, which only it may resume."""
    return "chat" if chat else "completion"


async def _payloads(
    plan: PlannedCall,
    call: GenerateCall,
    first: summarizer_pb2.GenerateResponse,
    chunks: CompletionChunks,
    lease: str | None,
) -> AsyncGenerator[Payload, None]:
    """The payloads of one stream (see ``openai_stream``); ends early, with an error
    envelope, when the backend fails or the gateway drains. Closing it cancels the call."""
    request_id = request_context.current().trace.request_id
    async with contextlib.aclosing(generation_messages(plan, call, first, lease)) as messages:
        async for message in messages:
            if isinstance(message, ApiError):
                yield _error(message, request_id)
                return
            for chunk in chunks.of(message):
                yield chunk
            if message.HasField("usage"):
                yield DONE


def _error(error: ApiError, request_id: str) -> Payload:
    """A refusal as the stream's last payload (its answer's status went out already)."""
    return envelope(error.code, error.message, request_id, param=error.param)
