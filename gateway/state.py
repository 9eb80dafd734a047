"""What the gateway's handlers share, made in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from gateway.auth import Authenticator
from gateway.backends import Backends
from gateway.cache import PredictionCache
from gateway.drain import Drain
from gateway.keys import KeyStore
from gateway.live_stats import LiveStats
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import RateLimiter
from gateway.routing import Router
from gateway.routing_store import RoutingStore
from gateway.settings import GatewaySettings
from gateway.stream_tokens import StreamTokens


@dataclass
class GatewayState:
    settings: GatewaySettings
    backends: Backends
    metrics: GatewayMetrics
    drain: Drain
    keys: KeyStore
    auth: Authenticator
    limiter: RateLimiter
    stream_tokens: StreamTokens
    cache: PredictionCache
    routing: RoutingStore
    router: Router
    live: LiveStats


def gateway_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
