"""What the gateway's handlers share, made in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from gateway.backends import Backends
from gateway.drain import Drain
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings


@dataclass
class GatewayState:
    settings: GatewaySettings
    backends: Backends
    metrics: GatewayMetrics
    drain: Drain


def gateway_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
