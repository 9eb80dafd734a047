"""``POST /v1/summarize`` (the whole summary) and ``/v1/summarize/stream`` (Server-Sent
Events, by POST with a JSON body or by GET for a browser's ``EventSource``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sse_starlette import EventSourceResponse

from gateway.access.auth import Caller
from gateway.backends import rpc_names
from gateway.edge import request_context
from gateway.edge.disconnect import unless_client_leaves
from gateway.errors.refusals import InvalidArgument, Unauthenticated
from gateway.limits import generation
from gateway.pipeline import ModelCall, call_backend, plan_call, stable_call
from gateway.routes.bodies import (
    PINNED_PREFIX,
    VERSION_PIN_DOC,
    documented,
    documented_pinned,
    model_of,
    read_body,
    version_pin,
)
from gateway.routes.deps import Client, State
from gateway.routes.openapi import sse_content
from gateway.routes.replay_stream import resume
from gateway.routes.responses import CALLER, JSON_BODY, MODEL_CALL, json_answer, refusals
from gateway.routes.schemas import (
    StreamQuery,
    StreamTokenAnswer,
    SummarizeAnswer,
    SummarizeBody,
)
from gateway.routes.summary_stream import (
    lost_summary,
    max_new_tokens,
    stream_summary,
    usage_from,
)
from gateway.state import GatewayState

router = APIRouter(prefix="/v1", tags=["models"])

REFUSALS = refusals(*CALLER, *JSON_BODY, *MODEL_CALL)

SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`token` events (data: `TokenEvent`), then one `done` event with the"
        " usage (data: `DoneEvent`); an `error` event with the error envelope (data:"
        " `ErrorEnvelope`) if the model service fails mid-stream. Every event's `id` is"
        " `<generation>.<index>`: send the request again with the last one seen as"
        " `Last-Event-ID` (to any replica, within the grace period) to get the events that"
        " followed it and then the rest, from the same generation. Comments (`: ping`) keep"
        " the connection alive.",
        "content": sse_content("Server-Sent Events: `token`..., then `done` or `error`."),
    },
    204: {"description": "A reconnect (`Last-Event-ID`) of a stream that has ended."},
    403: {"description": "A reconnect of a stream another caller started."},
}


@router.post(
    "/summarize",
    response_model=SummarizeAnswer,
    summary="Summarize a text",
    responses=REFUSALS,
    openapi_extra=documented(SummarizeBody),
)
@router.post(
    PINNED_PREFIX + "/summarize",
    response_model=SummarizeAnswer,
    summary="Summarize a text with a pinned model version",
    responses=REFUSALS,
    openapi_extra=documented_pinned(SummarizeBody),
)
async def summarize(request: Request, state: State) -> object:
    body = await read_body(request, SummarizeBody)
    model = model_of(request, body.model)
    plan = await plan_call(request, state, ModelCall("summarizer", model, version_pin(request)))
    tokens = await max_new_tokens(plan, body.max_new_tokens)
    options = body.generation()
    options["max_new_tokens"] = tokens
    # An abandoned summary stops generating, rather than holding the model to its end.
    reply = await unless_client_leaves(
        request,
        call_backend(
            "summarizer",
            plan.endpoint.summarizer.summarize(
                body.text,
                **options,
                model=plan.target.model,
                version=plan.target.version,
                request_id=plan.request_id,
                timeout_s=plan.timeout_s,
                metadata=plan.call_metadata(rpc_names.SUMMARIZE),
            ),
        ),
    )
    request_context.current().answered_by(reply.model, reply.version)
    shadow = stable_call(plan, "summarizer", reply.version)
    plan.state.shadow.summarize(shadow, body.text, dict(options), reply.summary)
    # The shadow's tokens are not the caller's: only stable's are spent.
    await generation.spend(plan.state.limits, plan.caller, reply.usage.generated_tokens)
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
    responses={**SSE_RESPONSES, **REFUSALS},
    openapi_extra=documented(SummarizeBody),
)
@router.post(
    PINNED_PREFIX + "/summarize/stream",
    summary="Summarize a text, streamed, with a pinned model version",
    response_class=EventSourceResponse,
    responses={**SSE_RESPONSES, **REFUSALS},
    openapi_extra=documented_pinned(SummarizeBody),
)
async def summarize_stream_post(request: Request, state: State) -> Response:
    return await open_stream(request, state, await read_body(request, SummarizeBody))


@router.get(
    "/summarize/stream",
    summary="Summarize a text given in the query string, for EventSource",
    description="The same stream as the POST route, for browsers' `EventSource`, which can"
    " only GET. The text may be at most `max_query_text_chars` characters long (4096 by"
    " default); POST longer texts.",
    response_class=EventSourceResponse,
    responses={**SSE_RESPONSES, **refusals(*CALLER, *MODEL_CALL)},
    openapi_extra=VERSION_PIN_DOC,
)
async def summarize_stream_get(
    query: Annotated[StreamQuery, Query()], request: Request, state: State
) -> Response:
    cap = state.settings.max_query_text_chars
    if len(query.text) > cap:
        raise InvalidArgument(
            f"text: at most {cap} characters in a query string; POST longer texts"
        )
    if request.headers.get("last-event-id") is not None:
        return await resume(request, state, "summary", lost_summary, query.stream_token)
    caller = None
    if query.stream_token is not None:
        caller = await state.stream_tokens.redeem(query.stream_token)
        if caller is None:
            raise Unauthenticated("the stream token is unknown, used or expired")
        if not await state.auth.still_valid(caller):
            raise Unauthenticated("the API key the stream token was made with was revoked")
    body = SummarizeBody.model_validate(query.model_dump(exclude={"stream_token"}))
    return await open_stream(request, state, body, caller, query.stream_token)


@router.post(
    "/summarize/stream-token",
    response_model=StreamTokenAnswer,
    summary="A single-use token that lets EventSource open one stream",
    responses=refusals(*CALLER),
    description="EventSource cannot send an API key in a header: trade the key for a token"
    " that opens one `GET /v1/summarize/stream?stream_token=...` within a minute.",
)
async def stream_token(state: State, caller: Client) -> StreamTokenAnswer:
    token = await state.stream_tokens.issue(caller)
    return StreamTokenAnswer(stream_token=token, expires_in_s=state.stream_tokens.ttl_s)


async def open_stream(
    request: Request,
    state: GatewayState,
    body: SummarizeBody,
    caller: Caller | None = None,
    stream_token: str | None = None,
) -> Response:
    # A reconnect resumes the generation it names, rather than starting another one.
    if request.headers.get("last-event-id") is not None:
        return await resume(request, state, "summary", lost_summary, stream_token)
    model = model_of(request, body.model)
    call = ModelCall("summarizer", model, version_pin(request))
    plan = await plan_call(request, state, call, caller)
    return await stream_summary(plan, body, stream_token)
