"""The caller of an admin route, who must hold the route's role."""

from __future__ import annotations

from fastapi import Request

from gateway.access.auth import Caller
from gateway.edge import request_context
from gateway.state import GatewayState, gateway_state


async def caller_with_role(request: Request, role: str) -> tuple[GatewayState, Caller]:
    state = gateway_state(request)
    caller = await state.auth.authenticate(request, role)
    request_context.current().caller = caller.id
    return state, caller


async def operator(request: Request) -> tuple[GatewayState, str]:
    """The gateway's state, and who the operator is as the audit trail names them."""
    state, caller = await caller_with_role(request, "operator")
    return state, f"{caller.id} ({caller.owner})"
