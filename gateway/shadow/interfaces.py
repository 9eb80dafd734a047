"""Where the shadow's agreement counters are added up: in Redis for every replica
(``RedisAgreementCounts`` in ``gateway.shadow.store``), or in this process
(``MemoryAgreementCounts`` in ``gateway.shadow.memory``), under the same rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

Pair = tuple[str, str, str]
"""A model, its stable version and its shadow version."""


class AgreementStorage(Protocol):
    async def add(self, batch: Mapping[Pair, Mapping[str, float]]) -> None:
        """Add counters to each pair's; store errors propagate (the caller keeps them)."""
        ...

    async def counts(self, pair: Pair) -> dict[str, float]:
        """Every counter of a pair (none: an empty dict)."""
        ...

    async def reset(self, pair: Pair) -> None:
        """Forget a pair's counters."""
        ...
