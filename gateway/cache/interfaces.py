"""The interface of the prediction cache: ``PredictionCache`` keeps the answers in Redis
(shared by every replica, ``gateway.cache.prediction``), ``MemoryPredictionCache`` in this
process (``gateway.cache.memory``). Trouble with the store makes every text a miss, never
an error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class CacheStorage(Protocol):
    @property
    def enabled(self) -> bool:
        """False when answers are not cached at all (a TTL of 0)."""
        ...

    def key(self, service: str, model: str, version: str, options: str, text: str) -> str:
        """The entry of one text's answer by one model version with these options."""
        ...

    async def lookup(self, keys: Sequence[str]) -> list[bytes | str | None]:
        """The stored answer of each key, None where there is none."""
        ...

    async def store(self, entries: dict[str, bytes]) -> None:
        """Keep these answers for the cache's TTL."""
        ...
