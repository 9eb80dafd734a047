"""The prediction cache kept in this process, for a gateway with no Redis at all: at most
``max_entries`` answers, the oldest dropped first, each for ``ttl_s``."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from gateway.cache.prediction import entry_key


class MemoryPredictionCache:
    """At most ``max_entries`` results, the oldest dropped first (a ``CacheStorage``)."""

    def __init__(self, ttl_s: int, max_entries: int = 10_000, prefix: str = "sy:cache:") -> None:
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def key(self, service: str, model: str, version: str, options: str, text: str) -> str:
        return entry_key(self.prefix, service, model, version, options, text)

    async def lookup(self, keys: Sequence[str]) -> list[bytes | str | None]:
        now = time.monotonic()
        found: list[bytes | str | None] = []
        for key in keys:
            entry = self._entries.get(key)
            found.append(entry[0] if entry is not None and entry[1] > now else None)
        return found

    async def store(self, entries: dict[str, bytes]) -> None:
        expires = time.monotonic() + self.ttl_s
        for key, value in entries.items():
            self._entries[key] = (value, expires)
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
