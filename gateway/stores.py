"""Where the gateway keeps what its replicas share: Redis, or this process when no Redis
is configured (the local system on a machine without one). Each store is an interface
(``interfaces`` in its concern's folder) with a Redis and an in-process implementation."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.access.access_tokens import AccessTokens
from gateway.access.bearer import BearerTokens
from gateway.access.interfaces import KeyStorage, StreamTokenStorage
from gateway.access.jwks import JwksFetcher
from gateway.access.jwt_auth import JwtVerifier
from gateway.access.keys import ApiKey, KeyStore
from gateway.access.memory import (
    MemoryFailureCounter,
    MemoryKeyStore,
    MemoryRevokedTokens,
    MemoryStreamTokens,
)
from gateway.access.revoked import RevokedTokens
from gateway.access.stream_tokens import StreamTokens
from gateway.access.throttle import AuthThrottle, RedisFailureCounter
from gateway.cache.interfaces import CacheStorage
from gateway.cache.memory import MemoryPredictionCache
from gateway.cache.prediction import PredictionCache
from gateway.jobs.interfaces import JobStorage
from gateway.jobs.memory import MemoryJobStore
from gateway.jobs.store import RedisJobStore
from gateway.limits.interfaces import LimitStorage
from gateway.limits.memory import MemoryRateLimiter
from gateway.limits.ratelimit import RateLimiter
from gateway.replay.hub import GenerationHub
from gateway.replay.local import LocalReplay
from gateway.replay.shared import SharedReplay
from gateway.routing.interfaces import RoutingStorage
from gateway.routing.memory import MemoryRoutingStore
from gateway.routing.store import RoutingStore
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedStores:
    keys: KeyStorage
    limiter: LimitStorage
    stream_tokens: StreamTokenStorage
    cache: CacheStorage
    routing: RoutingStorage
    jobs: JobStorage


STALE_CONNECTION_RETRY = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
"""One retry, on a new connection, of a command whose connection failed: a pooled
connection that outlived a Redis restart fails on its first use, and without a retry
(redis-py's ``from_url`` clients retry nothing) that use would be a 503 where Redis is
fine. Timeouts are not retried: a slow Redis would be asked twice, and a counting script
could count twice."""


def shared_stores(settings: GatewaySettings) -> tuple[SharedStores, redis.Redis | None]:
    """The stores in Redis, or in this process (loudly) when no Redis is configured."""
    if settings.redis_url is None:
        log.warning(
            "NO REDIS: keys, rate limits, stream tokens, the cache, routing tables, live"
            " figures and batch jobs are kept in this process; every gateway process has"
            " its own limits. Set REDIS_URL to share them."
        )
        seeded = seed_keys(settings.seed_keys_file) if settings.seed_keys_file else []
        memory = SharedStores(
            MemoryKeyStore(seeded),
            MemoryRateLimiter(),
            MemoryStreamTokens(),
            MemoryPredictionCache(settings.cache_ttl_s),
            MemoryRoutingStore(),
            MemoryJobStore(),
        )
        return memory, None
    # Short timeouts: a Redis that stopped answering must not hold requests up.
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=STALE_CONNECTION_RETRY,
    )
    stores = SharedStores(
        KeyStore(client),
        RateLimiter(client),
        StreamTokens(client),
        PredictionCache(client, settings.cache_ttl_s),
        RoutingStore(client),
        RedisJobStore(client),
    )
    return stores, client


REPLAY_LIVE_S = 5.0
"""How long the replica running a generation may go without telling readers elsewhere
that it still does (it tells them at every event, and every third of the grace period)."""


def generation_hub(settings: GatewaySettings, client: redis.Redis | None) -> GenerationHub:
    """Streamed generations kept for replay: in this process, and in Redis when there is
    one, so that a client may resume through any replica."""
    grace_s, ttl_s = settings.stream_resume_grace_s, settings.stream_replay_ttl_s
    shared = None
    if client is not None:
        shared = SharedReplay(client, ttl_s, max(REPLAY_LIVE_S, grace_s), grace_s)
    return GenerationHub(LocalReplay(ttl_s), shared, grace_s)


def seed_keys(path: Path) -> list[tuple[ApiKey, str]]:
    entries = json.loads(path.read_text())
    return [
        (
            ApiKey(
                e["id"], e["owner"], e["role"], e["tier"], time.time(), False, e.get("limits", {})
            ),
            e["hash"],
        )
        for e in entries
    ]


def bearer_tokens(
    settings: GatewaySettings, client: redis.Redis | None, external: JwtVerifier | None
) -> BearerTokens | None:
    """Bearer tokens (an identity provider's, checked by ``external``, and the gateway's
    own), if any are accepted; revocations kept in Redis, or in this process."""
    signing_key = settings.token_signing_key
    if external is None and signing_key is None:
        return None
    fetcher = None
    if settings.jwks_url is not None and external is not None:
        fetcher = JwksFetcher(
            settings.jwks_url,
            external.replace_keys,
            refresh_s=settings.jwks_refresh_s,
            min_refresh_s=settings.jwks_min_refresh_s,
        )
    issued = None
    if signing_key is not None:
        issued = AccessTokens(
            signing_key.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.token_ttl_s,
        )
    revoked = MemoryRevokedTokens() if client is None else RevokedTokens(client)
    return BearerTokens(
        settings.tiers,
        revoked,
        external=external,
        fetcher=fetcher,
        issued=issued,
        max_lifetime_s=settings.jwt_max_lifetime_s,
        fail_open=settings.rate_limit_failure == "open",
    )


def auth_throttle(settings: GatewaySettings, client: redis.Redis | None) -> AuthThrottle:
    """Invalid credentials counted per address in Redis, or in this process."""
    failures = MemoryFailureCounter() if client is None else RedisFailureCounter(client)
    return AuthThrottle(failures, settings.auth_failures_per_minute)
