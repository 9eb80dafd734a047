"""A model's rollout status as operators read it: its routing table, every version's
live figures over the window of every replica, the guardrails' verdicts, what the
backends host and the shadow's agreement. The rollout routes answer with it; the
operator's live stream pushes it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from gateway.routes.operations import hosted_models
from gateway.routing.guardrails import judge, judged_since
from gateway.routing.table import Rollout
from gateway.state import GatewayState


class HostedVersion(BaseModel):
    version: str
    default: bool = Field(description="The version a caller gets when no table routes it.")
    status: str = Field(description="As the backends last listed it: ready, loading, ...")


class RolloutStatus(BaseModel):
    rollout: dict[str, Any] | None
    routing_revision: int = Field(description="Revision of the tables this replica routes with.")
    live: dict[str, dict[str, Any]] = Field(
        description="Per version: requests, errors by code, latency and time-to-first-token"
        " percentiles, label shares, over the live window of every replica."
    )
    guardrails: dict[str, str] = Field(description="Per canary: the guardrails' verdict now.")
    hosted: list[HostedVersion] = Field(
        default_factory=list,
        description="Every version the backends host for the model, table or not.",
    )
    shadow: dict[str, Any] | None = Field(
        None,
        description="The shadow version, its share, and its agreement with stable so far"
        " ({kind, n, value, low, high, ...}); None without a shadow.",
    )


async def status_of(state: GatewayState, model: str, rollout: Rollout | None) -> RolloutStatus:
    """``model``'s status with ``rollout`` as its table (None: it has none)."""
    versions = [v.version for v in rollout.versions] if rollout is not None else None
    figures = await state.live.figures(model, versions)
    verdicts: dict[str, str] = {}
    if rollout is not None and rollout.guardrails is not None:
        judged = await state.live.figures(
            model, versions, since=judged_since(rollout), assigned_only=True
        )
        stable = judged.get(rollout.stable.version)
        for canary in rollout.canaries:
            found = judged.get(canary.version)
            if stable is not None and found is not None:
                verdicts[canary.version] = judge(rollout.guardrails, stable, found).reason
    return RolloutStatus(
        rollout=rollout.model_dump(mode="json") if rollout is not None else None,
        routing_revision=state.router.revision,
        live={version: f.public() for version, f in figures.items()},
        guardrails=verdicts,
        hosted=[
            HostedVersion(version=v.version, default=v.default, status=v.status)
            for entry in hosted_models(state)
            if entry.name == model
            for v in entry.versions
        ],
        shadow=await state.shadow.status(rollout),
    )
