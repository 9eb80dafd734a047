"""``/v1/admin/rollouts/{model}/shadow``: start (or change the share of) a shadow version
that answers copies of stable's requests to no one, and stop it (the operator role).
Changes are checked, written with a compare-and-set and audited, as every rollout change;
the agreement shows in the rollout's status (``GET /v1/admin/rollouts/{model}``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ConfigDict, Field

from gateway.errors.refusals import FailedPrecondition, NotFound
from gateway.routes.bodies import documented, read_body
from gateway.routes.deps import Actor, State
from gateway.routes.responses import CALLER, JSON_BODY, refusals
from gateway.routes.rollout_status import RolloutStatus
from gateway.routes.rollouts import Reason, applied, ops_of, optional_body
from gateway.routing.shadow_ops import start_shadow, stop_shadow

router = APIRouter(prefix="/v1/admin/rollouts", tags=["rollouts"])

CHANGE = refusals(*CALLER, *JSON_BODY, NotFound, FailedPrecondition)


class StartShadow(Reason):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"version": "v2", "share": 25, "reason": "dark launch"}]},
    )
    version: str = Field(min_length=1, description="The version that answers the copies.")
    share: float = Field(ge=0, le=100, description="Percent of stable's requests copied.")


@router.post(
    "/{model}/shadow",
    response_model=RolloutStatus,
    summary="Copy a share of stable's requests to a version that answers no one",
    responses=CHANGE,
    openapi_extra=documented(StartShadow, pin=False),
)
async def shadow(model: str, request: Request, state: State, actor: Actor) -> RolloutStatus:
    body = await read_body(request, StartShadow)
    rollout, new_pair = await start_shadow(
        ops_of(state), model, body.version, body.share, actor, body.reason
    )
    if new_pair:
        # Another version than before: its agreement starts from nothing. (Copies other
        # replicas made under the new table meanwhile are lost with the old counts: a few
        # at most, as they follow the table within routing_follow_s.)
        await state.shadow.agreement.reset((model, rollout.stable.version, body.version))
    return await applied(state, rollout)


@router.delete(
    "/{model}/shadow",
    response_model=RolloutStatus,
    summary="Stop copying requests to the shadow version (its agreement is kept)",
    responses=refusals(*CALLER, NotFound, FailedPrecondition),
)
async def stop(model: str, request: Request, state: State, actor: Actor) -> RolloutStatus:
    body = await optional_body(request, Reason)
    return await applied(state, await stop_shadow(ops_of(state), model, actor, body.reason))
