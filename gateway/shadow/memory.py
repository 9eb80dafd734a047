"""The shadow's agreement counters in this process, for a gateway without Redis (an
``AgreementStorage``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from gateway.shadow.interfaces import Pair


class MemoryAgreementCounts:
    def __init__(self) -> None:
        self._counts: dict[Pair, defaultdict[str, float]] = {}

    async def add(self, batch: Mapping[Pair, Mapping[str, float]]) -> None:
        for pair, counts in batch.items():
            kept = self._counts.setdefault(pair, defaultdict(float))
            for field, value in counts.items():
                kept[field] += value

    async def counts(self, pair: Pair) -> dict[str, float]:
        return dict(self._counts.get(pair, {}))

    async def reset(self, pair: Pair) -> None:
        self._counts.pop(pair, None)
