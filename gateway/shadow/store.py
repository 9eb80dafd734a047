"""The shadow's agreement counters in Redis, added up by every replica (an
``AgreementStorage``): one hash per (model, stable, shadow), ``sy:shadow:{sentiment}:v1:v2``
(names percent-encoded, so no two pairs share a key; the hash tag keeps a model's pairs on
one Redis Cluster slot), HINCRBYFLOAT per counter. A pair's hash expires ``ttl_s`` after
its last write: a shadow stopped long ago leaves nothing behind, while one stopped just
before its canary starts still vouches for it."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from urllib.parse import quote

import redis.asyncio

from gateway.shadow.interfaces import Pair


@functools.lru_cache(maxsize=1024)
def _key_part(name: str) -> str:
    return quote(name, safe="")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisAgreementCounts:
    def __init__(self, client: redis.asyncio.Redis, prefix: str, ttl_s: int) -> None:
        self._client = client
        self._prefix = prefix
        self.ttl_s = ttl_s

    def key(self, pair: Pair) -> str:
        model, stable, shadow = (_key_part(name) for name in pair)
        return f"{self._prefix}{{{model}}}:{stable}:{shadow}"

    async def add(self, batch: Mapping[Pair, Mapping[str, float]]) -> None:
        """One pipeline for every pair's counters."""
        if not batch:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for pair, counts in batch.items():
                key = self.key(pair)
                for field, value in counts.items():
                    pipe.hincrbyfloat(key, field, value)
                pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def counts(self, pair: Pair) -> dict[str, float]:
        found: dict[bytes | str, bytes | str] = await self._client.hgetall(self.key(pair))
        return {_text(field): float(value) for field, value in found.items()}

    async def reset(self, pair: Pair) -> None:
        await self._client.delete(self.key(pair))
