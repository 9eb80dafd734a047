"""``GET /v1/admin/live``: what the operator dashboard shows, pushed as Server-Sent Events.

Every ``operator_push_s``, and at once when this replica applies a routing change, the
stream sends a ``snapshot`` event: per model the backends host (or that has a routing
table), the same status as ``GET /v1/admin/rollouts/{model}``, the experiment results and
the newest audit entries. The figures are the shared ones (Redis), so every replica
pushes the same numbers. The stream ends with an ``error`` event when the gateway drains
(the client connects again, to another replica), or the caller's key is revoked; a client
that leaves stops it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway.access.auth import Caller
from gateway.edge import request_context
from gateway.errors.refusals import ApiError, Unauthenticated, Unavailable, envelope
from gateway.routes.deps import Operator, State
from gateway.routes.experiments import ExperimentResults, experiment_results
from gateway.routes.operations import hosted_models
from gateway.routes.replay_stream import KeepAlive
from gateway.routes.rollout_status import RolloutStatus, status_of
from gateway.state import GatewayState

router = APIRouter(prefix="/v1/admin", tags=["admin"])

AUDIT_READ = 200
"""The newest audit entries (of every subject) each snapshot reads."""
AUDIT_SHOWN = 20
"""Of those, the most each model's part of a snapshot carries."""
EXPERIMENTS_EVERY_S = 5.0
"""Experiment results are read and tested at most this often per stream: every outcome
is read to test them, and outcomes arrive far slower than requests."""


class ModelSnapshot(RolloutStatus):
    model: str
    service: str = Field(description="The service that hosts it; empty when none does now.")
    experiments: ExperimentResults | None = Field(
        description="Each version's reported outcomes against the baseline."
    )
    audit: list[dict[str, Any]] = Field(description="The model's newest changes, newest first.")


class LiveSnapshot(BaseModel):
    at: float = Field(description="When it was taken (seconds since the epoch).")
    routing_revision: int
    push_s: float = Field(description="Seconds between snapshots when nothing changes.")
    models: list[ModelSnapshot]


def _models(state: GatewayState) -> dict[str, str]:
    """Model -> service, of every model the backends host or a routing table names."""
    found: dict[str, str] = {}
    for entry in hosted_models(state):
        found.setdefault(entry.name, entry.service)
    for model in state.router.tables():
        found.setdefault(model, "")
    return found


class Snapshots:
    """The snapshots of one stream (which keeps its experiment results a while)."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self._experiments: dict[str, ExperimentResults] = {}
        self._experiments_at = -EXPERIMENTS_EVERY_S

    async def take(self) -> LiveSnapshot:
        state = self.state
        models = _models(state)
        now = time.monotonic()
        if now - self._experiments_at >= EXPERIMENTS_EVERY_S:
            self._experiments = {m: await experiment_results(state, m) for m in models}
            self._experiments_at = now
        entries = await state.routing.audit(None, AUDIT_READ)
        shown = []
        for model, service in models.items():
            status = await status_of(state, model, await state.routing.get(model))
            audit = [e.public() for e in entries if e.subject == model][:AUDIT_SHOWN]
            shown.append(
                ModelSnapshot.model_validate(
                    {
                        **status.model_dump(),
                        "model": model,
                        "service": service,
                        "experiments": self._experiments.get(model),
                        "audit": audit,
                    }
                )
            )
        return LiveSnapshot(
            at=time.time(),
            routing_revision=state.router.revision,
            push_s=state.settings.operator_push_s,
            models=shown,
        )


def _error_event(error: ApiError, last: bool) -> ServerSentEvent:
    request_id = request_context.current().trace.request_id
    data = envelope(error.code, error.message, request_id)
    data["error"]["final"] = last
    return ServerSentEvent(json.dumps(data), event="error")


async def _first_of(*events: asyncio.Event, timeout_s: float) -> None:
    """Wait until one of ``events`` is set, or ``timeout_s`` has passed."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def pushed(state: GatewayState, caller: Caller) -> AsyncIterator[ServerSentEvent]:
    """Snapshots until the gateway drains or the caller's key is revoked (or the client
    leaves, which cancels this)."""
    snapshots = Snapshots(state)
    drained = state.drain.started
    for number in itertools.count():
        if drained.is_set():
            break
        # Taken before the snapshot: a change applied while it is built wakes the next.
        changed = state.router.next_change()
        try:
            # Checked at every snapshot: a revoked key stops seeing the figures at once.
            if not await state.auth.still_valid(caller):
                yield _error_event(Unauthenticated("the API key was revoked"), last=True)
                return
            snapshot = await snapshots.take()
        except (redis.ConnectionError, redis.TimeoutError):
            unreachable = Unavailable("the shared store (Redis) does not answer; retrying")
            yield _error_event(unreachable, last=False)
        else:
            yield ServerSentEvent(snapshot.model_dump_json(), event="snapshot", id=str(number))
        await _first_of(changed, drained, timeout_s=state.settings.operator_push_s)
    yield _error_event(Unavailable("the gateway is shutting down; connect again"), last=True)


# Not in the OpenAPI document: it never ends by itself, which a client generated from
# the document (or a conformance test reading whole answers) would wait on for ever.
@router.get("/live", response_class=EventSourceResponse, include_in_schema=False)
async def live(request: Request, state: State, caller: Operator) -> Response:
    return EventSourceResponse(
        pushed(state, caller),
        ping=state.settings.sse_heartbeat_s,
        ping_message_factory=KeepAlive,
        headers={"Cache-Control": "no-cache"},
    )
