"""The outcomes callers report, per model version: one per caller and request (a second
report of the same request replaces the first), in Redis or in this process."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

import redis.asyncio as redis

Outcome = bool | float | str
"""What a caller reports: success or not, a number (a rating, a time), or a label."""

TTL_S = 30 * 86400


class OutcomeStore:
    def __init__(self, client: redis.Redis | None, prefix: str = "sy:outcomes:") -> None:
        self._client = client
        self._prefix = prefix
        self._local: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))

    async def record(
        self, model: str, version: str, caller: str, request_id: str, value: Outcome
    ) -> None:
        field, encoded = f"{caller}\n{request_id}", json.dumps(value)
        if self._client is None:
            self._local[model][version][field] = encoded
            return
        versions, outcomes = self._versions_key(model), self._outcomes_key(model, version)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.sadd(versions, version)
            pipe.expire(versions, TTL_S)
            pipe.hset(outcomes, field, encoded)
            pipe.expire(outcomes, TTL_S)
            await pipe.execute()

    async def outcomes(self, model: str) -> dict[str, list[Outcome]]:
        """Every version's reported outcomes."""
        if self._client is None:
            return {v: _decoded(found.values()) for v, found in self._local[model].items()}
        names = sorted(_text(v) for v in await self._client.smembers(self._versions_key(model)))
        found = {}
        for version in names:
            stored = await self._client.hvals(self._outcomes_key(model, version))
            found[version] = _decoded(_text(v) for v in stored)
        return found

    def _versions_key(self, model: str) -> str:
        return f"{self._prefix}{model}"

    def _outcomes_key(self, model: str, version: str) -> str:
        return f"{self._prefix}{model}:{version}"


def _decoded(values: Iterable[str]) -> list[Outcome]:
    return [json.loads(v) for v in values]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
