"""``/v1/batches``: batch jobs in the shape of OpenAI's Batches API (the ``openai`` SDK's
``client.batches`` calls work unchanged), and ``/v1/admin/batches`` for operators.

A batch runs the lines of an uploaded file against one of the gateway's model routes
(its ``endpoint``), in the background, on whichever replica claims it. A caller sees and
cancels only its own batches (another's id is 404), admins included; operators list
everyone's through the admin route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from gateway.access.auth import Caller
from gateway.errors.refusals import InvalidArgument, NotFound, RateLimited
from gateway.jobs.input_file import ENDPOINTS
from gateway.jobs.records import BatchRecord, JobCaller, new_batch_id, now_s
from gateway.jobs.webhooks import WebhookRefused
from gateway.routes.bodies import read_body
from gateway.routes.deps import Client, Operator, State
from gateway.routes.files import owned_file
from gateway.routes.responses import CALLER, JSON_BODY, refusals
from gateway.routes.schemas import _Body
from gateway.state import GatewayState

router = APIRouter(prefix="/v1", tags=["batches"])

WINDOWS = {"24h": 86_400}
"""Completion windows: a batch not done within its window expires (lines left unanswered
are answered with ``batch_expired`` in the error file)."""

Metadata = dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]]


class BatchBody(_Body):
    input_file_id: str = Field(description="An uploaded file (purpose `batch`).")
    endpoint: str = Field(description=f"The route every line calls: one of {', '.join(ENDPOINTS)}.")
    completion_window: str = Field(description="`24h`.")
    metadata: Metadata | None = Field(
        None,
        max_length=16,
        description="Up to 16 pairs kept with the batch; `webhook_url` names a URL that"
        " is sent the batch, signed, when it ends.",
    )


async def owned_batch(state: GatewayState, caller: Caller, batch_id: str) -> BatchRecord:
    record = await state.jobs.get_batch(batch_id)
    if record is None or record.owner != caller.id:
        raise NotFound(f"no batch {batch_id!r}")
    return record


def page(records: list[BatchRecord], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [r.public() for r in records],
        "first_id": records[0].id if records else None,
        "last_id": records[-1].id if records else None,
        "has_more": has_more,
    }


@router.post(
    "/batches",
    summary="Create a batch job from an uploaded file",
    responses=refusals(*CALLER, *JSON_BODY, NotFound, RateLimited),
)
async def create_batch(request: Request, state: State, caller: Client) -> dict[str, Any]:
    body = await read_body(request, BatchBody)
    if body.endpoint not in ENDPOINTS:
        raise InvalidArgument(f"endpoint must be one of {', '.join(ENDPOINTS)}")
    window = WINDOWS.get(body.completion_window)
    if window is None:
        raise InvalidArgument(f"completion_window must be one of {', '.join(WINDOWS)}")
    source = await owned_file(state, caller, body.input_file_id)
    if source.purpose != "batch":
        raise InvalidArgument(f"file {source.id!r} was not uploaded for purpose batch")
    try:
        await state.callbacks.check(body.metadata)
    except WebhookRefused as refused:
        raise InvalidArgument(f"metadata.webhook_url: {refused}") from None
    created = now_s()
    record = BatchRecord(
        new_batch_id(),
        caller.id,
        body.endpoint,
        source.id,
        body.completion_window,
        created,
        created + window,
        JobCaller(
            caller.id,
            caller.owner,
            caller.tier,
            sorted(caller.roles),
            caller.limits.model_dump(),
        ),
        metadata=body.metadata,
    )
    most = caller.limits.max_open_batches
    if not await state.jobs.create_batch(record, most):
        # Not worth an SDK's automatic retries: a batch takes longer to end than they wait.
        raise RateLimited(
            f"{most} batches are open on this tier; create more once one ends", retry=False
        )
    if state.job_runner is not None:
        state.job_runner.wake.set()
    return record.public()


@router.get("/batches", summary="Your batches, newest first", responses=refusals(*CALLER))
async def list_batches(
    state: State,
    caller: Client,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    return page(*await state.jobs.list_batches(caller.id, after, limit))


@router.get(
    "/batches/{batch_id}", summary="A batch's status", responses=refusals(*CALLER, NotFound)
)
async def get_batch(batch_id: str, state: State, caller: Client) -> dict[str, Any]:
    return (await owned_batch(state, caller, batch_id)).public()


@router.post(
    "/batches/{batch_id}/cancel",
    summary="Cancel a batch (it stops at its next checkpoint)",
    responses=refusals(*CALLER, NotFound),
)
async def cancel_batch(batch_id: str, state: State, caller: Client) -> dict[str, Any]:
    await owned_batch(state, caller, batch_id)
    await state.jobs.cancel(batch_id)
    return (await owned_batch(state, caller, batch_id)).public()


@router.get(
    "/admin/batches",
    summary="Every caller's batches, newest first (operators)",
    tags=["admin"],
    responses=refusals(*CALLER),
)
async def all_batches(
    state: State,
    caller: Operator,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    records, has_more = await state.jobs.list_batches(None, after, limit)
    answer = page(records, has_more)
    for shown, record in zip(answer["data"], records, strict=True):
        shown["owner"] = record.owner
    return answer
