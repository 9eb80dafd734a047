"""What a route gets from FastAPI's dependencies, as ``Annotated`` aliases: the gateway's
state, and the caller with the role the route needs. A handler names what it needs in its
signature (``state: State, actor: Actor``); the caller is checked before the handler runs.

The model routes check their caller themselves (``gateway.pipeline.plan_call``), in the
same Redis round trip as the rate limit and the cache read, so they take only ``State``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.access.auth import Caller
from gateway.edge import request_context
from gateway.state import GatewayState

# Every dependency is a coroutine: FastAPI would run a plain function in its thread pool.


async def gateway_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(gateway_state)]
"""What the gateway's handlers share, made in the app's lifespan."""


async def _caller(request: Request, state: GatewayState, role: str) -> Caller:
    caller = await state.auth.authenticate(request, role)
    request_context.current().caller = caller.id
    return caller


async def client(request: Request, state: State) -> Caller:
    return await _caller(request, state, "client")


async def operator(request: Request, state: State) -> Caller:
    return await _caller(request, state, "operator")


async def admin(request: Request, state: State) -> Caller:
    return await _caller(request, state, "admin")


Client = Annotated[Caller, Depends(client)]
"""The caller, who holds the client role (as every role does)."""
Operator = Annotated[Caller, Depends(operator)]
"""The caller, who holds the operator role."""
Admin = Annotated[Caller, Depends(admin)]
"""The caller, who holds the admin role."""


async def actor(caller: Operator) -> str:
    return f"{caller.id} ({caller.owner})"


Actor = Annotated[str, Depends(actor)]
"""The operator making a change, as the audit trail names them."""


async def metrics_reader(request: Request, state: State) -> None:
    """Anyone, when the metrics are public; else an operator (not recorded as the
    request's caller)."""
    if not state.settings.metrics_public:
        await state.auth.authenticate(request, "operator")


MetricsReader = Annotated[None, Depends(metrics_reader)]
"""Whoever may read the metrics."""
