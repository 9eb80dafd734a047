"""What the gateway's handlers share, made in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.access.auth import Authenticator
from gateway.access.interfaces import KeyStorage, StreamTokenStorage
from gateway.backends.endpoints import Backends
from gateway.cache.interfaces import CacheStorage
from gateway.edge.drain import Drain
from gateway.edge.metrics import GatewayMetrics
from gateway.experiments.answers import AnswerLog
from gateway.experiments.outcomes import OutcomeStore
from gateway.jobs.callbacks import BatchCallbacks
from gateway.jobs.files import FileStorage
from gateway.jobs.interfaces import JobStorage
from gateway.jobs.runner import JobRunner
from gateway.limits.interfaces import LimitStorage
from gateway.limits.policy import LimitPolicy
from gateway.replay.hub import GenerationHub
from gateway.routing.interfaces import RoutingStorage
from gateway.routing.live_stats import LiveStats
from gateway.routing.router import Router
from gateway.settings import GatewaySettings
from gateway.shadow.mirror import ShadowMirror


@dataclass
class GatewayState:
    settings: GatewaySettings
    backends: Backends
    metrics: GatewayMetrics
    drain: Drain
    keys: KeyStorage
    auth: Authenticator
    limiter: LimitStorage
    stream_tokens: StreamTokenStorage
    cache: CacheStorage
    routing: RoutingStorage
    router: Router
    live: LiveStats
    limits: LimitPolicy
    jobs: JobStorage
    files: FileStorage
    job_runner: JobRunner | None
    """This replica's batch runner; None when it runs none (``jobs_run``)."""
    callbacks: BatchCallbacks
    replay: GenerationHub
    answers: AnswerLog
    """Which version answered each caller's request, for outcomes reported later."""
    outcomes: OutcomeStore
    """Outcomes callers reported, per version."""
    shadow: ShadowMirror
    """Copies of stable's requests for shadow versions, and their agreement."""
    """Streamed generations, kept for replay to reconnecting clients."""
