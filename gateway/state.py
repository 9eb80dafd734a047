"""What the gateway's handlers share, made in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.access.auth import Authenticator
from gateway.access.keys import KeyStore
from gateway.access.stream_tokens import StreamTokens
from gateway.backends.endpoints import Backends
from gateway.cache.prediction import PredictionCache
from gateway.edge.drain import Drain
from gateway.edge.metrics import GatewayMetrics
from gateway.limits.policy import LimitPolicy
from gateway.limits.ratelimit import RateLimiter
from gateway.routing.live_stats import LiveStats
from gateway.routing.router import Router
from gateway.routing.store import RoutingStore
from gateway.settings import GatewaySettings


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
    limits: LimitPolicy
