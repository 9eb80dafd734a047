"""``/v1/admin/rollouts``: the routing table of each model, its live figures, and the
operator's changes to it (the operator role). Every change is checked, written with a
compare-and-set and audited; this replica routes with it at once, the others within
``routing_follow_s``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors.refusals import FailedPrecondition, InvalidArgument, NotFound
from gateway.routes.bodies import Body, documented, read_body
from gateway.routes.deps import Actor, Operator, State
from gateway.routes.responses import CALLER, JSON_BODY, refusals
from gateway.routes.rollout_status import RolloutStatus, status_of
from gateway.routing.rollout_ops import RolloutOps
from gateway.routing.table import Guardrails, Rollout
from gateway.state import GatewayState

router = APIRouter(prefix="/v1/admin/rollouts", tags=["rollouts"])

READ = refusals(*CALLER)
CHANGE = refusals(*CALLER, *JSON_BODY, NotFound, FailedPrecondition)
"""A change of a table: its body, the model or version unknown, the change impossible now."""
unversioned_router = APIRouter(prefix="/admin/rollouts", tags=["rollouts"])


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=500, description="Why: kept in the audit trail.")


class StartCanary(Reason):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "canary": "v2",
                    "weight": 10,
                    "guardrails": {"max_error_rate_delta": 0.02, "steps": [5, 25, 50, 100]},
                    "reason": "new sentiment model",
                }
            ]
        },
    )
    canary: str = Field(min_length=1, description="The version to put in front of callers.")
    weight: float = Field(ge=0, le=100, description="Percent of callers it takes at first.")
    stable: str | None = Field(
        None,
        description="The stable version, when the model has no table yet (default:"
        " the version the backends list as default).",
    )
    guardrails: Guardrails | None = None


class SetWeight(Reason):
    weight: float = Field(ge=0, le=100)
    version: str | None = Field(None, description="The canary (needed only with several).")


class CanaryAction(Reason):
    version: str | None = Field(None, description="The canary (needed only with several).")


class Promote(CanaryAction):
    sunset: datetime | None = Field(
        None, description="When the old stable version stops answering (it is deprecated)."
    )


class VersionState(Reason):
    state: str = Field(description="deprecated or retired.")
    sunset: datetime | None = None


class AllowCaller(Reason):
    version: str = Field(min_length=1)


class AuditList(BaseModel):
    entries: list[dict[str, Any]]


async def optional_body(request: Request, kind: type[Body]) -> Body:
    """The body as a ``kind``, or ``kind``'s defaults when there is none."""
    return await read_body(request, kind) if await request.body() else kind()


def ops_of(state: GatewayState) -> RolloutOps:
    return RolloutOps(state.routing, state.backends, state.shadow.evidence)


async def applied(state: GatewayState, rollout: Rollout) -> RolloutStatus:
    await state.router.refresh()
    return await status_of(state, rollout.model, rollout)


@router.get("", summary="Every routing table this replica routes with", responses=READ)
async def list_rollouts(state: State, caller: Operator) -> dict[str, Any]:
    return {
        "routing_revision": state.router.revision,
        "rollouts": {m: r.model_dump(mode="json") for m, r in state.router.tables().items()},
    }


@router.get(
    "/{model}",
    response_model=RolloutStatus,
    summary="A model's table and live figures",
    responses=READ,
)
@unversioned_router.get("/{model}", response_model=RolloutStatus)
async def rollout_status(model: str, state: State, caller: Operator) -> RolloutStatus:
    stored = await state.routing.get(model)
    return await status_of(state, model, stored)


@router.post(
    "/{model}/start",
    response_model=RolloutStatus,
    summary="Put a canary version in front of a share of callers",
    responses=CHANGE,
    openapi_extra=documented(StartCanary, pin=False),
)
async def start(model: str, request: Request, state: State, actor: Actor) -> RolloutStatus:
    body = await read_body(request, StartCanary)
    rollout = await ops_of(state).start(
        model,
        body.canary,
        body.weight,
        actor,
        body.reason,
        stable=body.stable,
        guardrails=body.guardrails,
    )
    return await applied(state, rollout)


@router.post(
    "/{model}/weight",
    response_model=RolloutStatus,
    summary="Set the canary's share of callers",
    responses=CHANGE,
    openapi_extra=documented(SetWeight, pin=False),
)
async def set_weight(model: str, request: Request, state: State, actor: Actor) -> RolloutStatus:
    body = await read_body(request, SetWeight)
    rollout = await ops_of(state).set_weight(model, body.weight, actor, body.reason, body.version)
    return await applied(state, rollout)


@router.post(
    "/{model}/pause",
    response_model=RolloutStatus,
    summary="Hold automatic steps",
    responses=CHANGE,
)
async def pause(model: str, request: Request, state: State, actor: Actor) -> RolloutStatus:
    body = await optional_body(request, Reason)
    return await applied(state, await ops_of(state).pause(model, True, actor, body.reason))


@router.post(
    "/{model}/resume", response_model=RolloutStatus, summary="Go on stepping", responses=CHANGE
)
async def resume(model: str, request: Request, state: State, actor: Actor) -> RolloutStatus:
    body = await optional_body(request, Reason)
    return await applied(state, await ops_of(state).pause(model, False, actor, body.reason))


@router.post(
    "/{model}/promote",
    response_model=RolloutStatus,
    summary="Make the canary the stable version (the old one is deprecated)",
    responses=CHANGE,
    openapi_extra=documented(Promote, pin=False),
)
async def promote(model: str, request: Request, state: State, actor: Actor) -> RolloutStatus:
    body = await optional_body(request, Promote)
    rollout = await ops_of(state).promote(model, actor, body.reason, body.version, body.sunset)
    return await applied(state, rollout)


@router.post(
    "/{model}/rollback",
    response_model=RolloutStatus,
    summary="Send every caller of the canary back to stable",
    responses=CHANGE,
    openapi_extra=documented(CanaryAction, pin=False),
)
async def rollback(model: str, request: Request, state: State, actor: Actor) -> RolloutStatus:
    body = await optional_body(request, CanaryAction)
    rollout = await ops_of(state).rollback(model, actor, body.reason, body.version)
    return await applied(state, rollout)


@router.post(
    "/{model}/versions/{version}",
    response_model=RolloutStatus,
    summary="Deprecate (Deprecation and Sunset headers) or retire (410) a version",
    responses=CHANGE,
    openapi_extra=documented(VersionState, pin=False),
)
async def set_version_state(
    model: str, version: str, request: Request, state: State, actor: Actor
) -> RolloutStatus:
    body = await read_body(request, VersionState)
    rollout = await ops_of(state).set_state(
        model, version, body.state, actor, body.reason, body.sunset
    )
    return await applied(state, rollout)


@router.put(
    "/{model}/allowlist/{caller}",
    response_model=RolloutStatus,
    summary="Send one caller (key:<id> or jwt:<subject>) to a version",
    responses=CHANGE,
    openapi_extra=documented(AllowCaller, pin=False),
)
async def allow(
    model: str, caller: str, request: Request, state: State, actor: Actor
) -> RolloutStatus:
    body = await read_body(request, AllowCaller)
    rollout = await ops_of(state).allow(model, caller, body.version, actor, body.reason)
    return await applied(state, rollout)


@router.delete(
    "/{model}/allowlist/{caller}",
    response_model=RolloutStatus,
    summary="Unlist a caller",
    responses=refusals(*CALLER, InvalidArgument, NotFound, FailedPrecondition),
)
async def disallow(model: str, caller: str, state: State, actor: Actor) -> RolloutStatus:
    return await applied(state, await ops_of(state).allow(model, caller, None, actor, ""))


@router.get(
    "/{model}/audit",
    response_model=AuditList,
    summary="Changes, newest first",
    responses=refusals(*CALLER, InvalidArgument),
)
async def audit(model: str, state: State, caller: Operator, limit: int = 100) -> AuditList:
    entries = await state.routing.audit(model, max(1, min(limit, 1000)))
    return AuditList(entries=[e.public() for e in entries])
