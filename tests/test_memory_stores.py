"""The in-process stores against the Redis ones, through the interfaces they share: the
same answers to the same calls (a gateway without Redis keeps the same rules)."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from redis.asyncio import Redis

from gateway.access.interfaces import FailureCounter, RevokedTokenStorage
from gateway.access.memory import MemoryFailureCounter, MemoryRevokedTokens
from gateway.access.revoked import RevokedTokens
from gateway.access.throttle import RedisFailureCounter
from gateway.cache.interfaces import CacheStorage
from gateway.cache.memory import MemoryPredictionCache
from gateway.cache.prediction import PredictionCache
from gateway.limits.interfaces import LimitStorage
from gateway.limits.memory import MemoryRateLimiter
from gateway.limits.ratelimit import RateLimiter
from gateway.routing.interfaces import RoutingStorage
from gateway.routing.memory import MemoryRoutingStore
from gateway.routing.store import AddedBackend, RoutingStore, audit_entry
from tests.test_routing import table

T0 = 1_893_499_200_000  # 2030-01-01 12:00 UTC, in ms
S = 1000

KINDS = ["redis", "memory"]


def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


@pytest.mark.parametrize("kind", KINDS)
async def test_routing_changes_and_backends(client: Redis, kind: str) -> None:
    store: RoutingStorage = (
        RoutingStore(client, prefix=prefix()) if kind == "redis" else MemoryRoutingStore()
    )
    first = table(10)
    assert await store.change(None, first, audit_entry("op", "start", "m", "", None, first))
    assert not await store.change(None, first, audit_entry("op", "start", "m", "", None, first))
    stored = await store.get(table(10).model)
    assert stored is not None and stored.revision == 1
    backend = AddedBackend("ner", "10.0.0.1:50052", "op", 1.0)
    entry = audit_entry("op", "add", "backend", "", None, backend.__dict__)
    assert await store.add_backend(backend, entry)
    assert not await store.add_backend(backend, entry)
    assert await store.revision() == 2
    assert (await store.load()).backends == [backend]
    assert await store.remove_backend(backend, entry)
    assert not await store.remove_backend(backend, entry)
    assert [e.action for e in await store.audit()] == ["add", "add", "start"]
    assert await store.revision() == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_leases_expire_and_renew(client: Redis, kind: str) -> None:
    limiter: LimitStorage = (
        RateLimiter(client, prefix=prefix()) if kind == "redis" else MemoryRateLimiter()
    )
    lease = await limiter.open_stream("key:a", 1, lease_s=10, now_ms=T0)
    assert lease is not None
    assert await limiter.open_stream("key:a", 1, lease_s=10, now_ms=T0 + 9 * S) is None
    assert await limiter.renew_stream("key:a", lease, lease_s=10, now_ms=T0 + 8 * S)
    assert await limiter.open_stream("key:a", 1, lease_s=10, now_ms=T0 + 15 * S) is None
    assert not await limiter.renew_stream("key:a", lease, now_ms=T0 + 18 * S + 1)
    assert await limiter.open_stream("key:a", 1, lease_s=10, now_ms=T0 + 18 * S + 1)


@pytest.mark.parametrize("kind", KINDS)
async def test_the_cache_names_and_keeps_answers_alike(client: Redis, kind: str) -> None:
    named = prefix()
    cache: CacheStorage = (
        PredictionCache(client, 60, prefix=named)
        if kind == "redis"
        else MemoryPredictionCache(60, prefix=named)
    )
    assert cache.enabled
    key = cache.key("classifier", "sentiment", "v1", "top_k=1", "a text")
    digest = hashlib.sha256(b"a text").hexdigest()
    assert key == f"{named}classifier:sentiment:v1:top_k=1:{digest}"
    assert await cache.lookup([key]) == [None]
    await cache.store({key: b"answer"})
    assert await cache.lookup([key, key + "x"]) == [b"answer", None]


@pytest.mark.parametrize("kind", KINDS)
async def test_revoked_tokens_are_kept_for_their_ttl_alike(client: Redis, kind: str) -> None:
    revoked: RevokedTokenStorage = (
        RevokedTokens(client, prefix=prefix()) if kind == "redis" else MemoryRevokedTokens()
    )
    assert not await revoked.is_revoked("jti-1")
    assert await revoked.ttl_s("jti-1") is None
    await revoked.revoke("jti-1", 120, "leaked")
    assert await revoked.is_revoked("jti-1")
    assert not await revoked.is_revoked("jti-2")
    ttl_s = await revoked.ttl_s("jti-1")
    assert ttl_s is not None and 110 <= ttl_s <= 120


@pytest.mark.parametrize("kind", KINDS)
async def test_auth_failures_are_counted_per_address_in_one_window_alike(
    client: Redis, kind: str
) -> None:
    counter: FailureCounter = (
        RedisFailureCounter(client, prefix=prefix()) if kind == "redis" else MemoryFailureCounter()
    )
    assert [(await counter.count("10.0.0.1", 60))[0] for _ in range(3)] == [1, 2, 3]
    count, left_s = await counter.count("10.0.0.2", 60)
    assert count == 1 and 50 <= left_s <= 60
