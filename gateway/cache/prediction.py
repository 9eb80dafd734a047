"""Deterministic predictions (classifier, NER) cached in Redis, per text.

An entry's key names the service, model, version and options, and the SHA-256 of the
text: a version never serves another version's answer, and a batch looks each text up
and sends only the misses to the model. Redis trouble makes every text a miss (logged),
never an error.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import redis.asyncio as redis
from pydantic import BaseModel

from gateway.cache.interfaces import CacheStorage
from gateway.edge import request_context

log = logging.getLogger(__name__)

Result = TypeVar("Result", bound=BaseModel)


def entry_key(prefix: str, service: str, model: str, version: str, options: str, text: str) -> str:
    """The name of one text's entry: a version never serves another version's answer."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{prefix}{service}:{model}:{version}:{options}:{digest}"


class PredictionCache:
    """Answers in Redis (a ``CacheStorage``)."""

    def __init__(self, client: redis.Redis, ttl_s: int, prefix: str = "sy:cache:") -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.prefix = prefix

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def key(self, service: str, model: str, version: str, options: str, text: str) -> str:
        return entry_key(self.prefix, service, model, version, options, text)

    async def lookup(self, keys: Sequence[str]) -> list[bytes | str | None]:
        try:
            found: list[bytes | str | None] = await self.client.mget(keys)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            log.warning("prediction cache unreachable: %s", type(error).__name__)
            return [None] * len(keys)
        return found

    async def store(self, entries: dict[str, bytes]) -> None:
        if not entries:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value in entries.items():
                    pipe.set(key, value, ex=self.ttl_s)
                await pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            log.warning("prediction cache unreachable: %s", type(error).__name__)


async def cached_results(
    cache: CacheStorage,
    keys: Sequence[str] | None,
    version: str,
    kind: type[Result],
    compute: Callable[[list[int] | None], Awaitable[tuple[list[Result], str]]],
    found: Sequence[bytes | str | None] | None = None,
) -> tuple[list[Result], int, str]:
    """Each text's result: from the cache where ``keys`` (one per text, for ``version``)
    find one, from ``compute`` for the rest. ``compute`` gets the positions of the
    misses (None: every text, uncached) and answers their results and the version that
    computed them. ``found`` holds the cache's values for ``keys`` when they were read
    already (with the caller's key check). Returns the results, the number of hits, and
    the version that answered."""
    if keys is None:
        computed, answered = await compute(None)
        return computed, 0, answered
    if found is None:
        started = time.perf_counter()
        found = await cache.lookup(keys)
        request_context.current().timings.append(("cache", time.perf_counter() - started))
    results = [kind.model_validate_json(raw) if raw is not None else None for raw in found]
    misses = [position for position, result in enumerate(results) if result is None]
    answered = version
    if misses:
        computed, answered = await compute(misses)
        for position, result in zip(misses, computed, strict=True):
            results[position] = result
        if answered == version:  # only ever stored under the version that computed it
            await cache.store(
                {
                    keys[p]: r.model_dump_json().encode()
                    for p, r in zip(misses, computed, strict=True)
                }
            )
    return [r for r in results if r is not None], len(keys) - len(misses), answered
