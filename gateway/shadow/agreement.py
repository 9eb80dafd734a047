"""The agreement counters of every (model, stable, shadow) pair, shared by the replicas.

Each comparison is counted in process (``record``: no I/O, a few dict updates, so a
mirror that finishes does not wait on Redis) and added to the store every second or so
(``flush``: one pipeline for everything counted meanwhile), as the live figures are:
a replica mirroring many requests writes once a second, not once per request. Reading a
pair sums the store's counters and this process's unflushed ones. Redis unreachable:
the counters are kept for the next flush that succeeds, as ``LiveStats`` keeps its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping

import redis.asyncio

from gateway.shadow.interfaces import AgreementStorage, Pair
from gateway.shadow.memory import MemoryAgreementCounts
from gateway.shadow.store import RedisAgreementCounts
from switchyard.flush_loop import flush_every

log = logging.getLogger(__name__)

AGREEMENT_TTL_S = 7 * 86_400
"""How long a pair's counters outlive its last comparison."""


def _add(
    into: dict[Pair, defaultdict[str, float]], batch: Mapping[Pair, Mapping[str, float]]
) -> None:
    for pair, counts in batch.items():
        kept = into.setdefault(pair, defaultdict(float))
        for field, value in counts.items():
            kept[field] += value


class ShadowAgreement:
    """Agreement counters per pair, in Redis (every replica's) or in this process."""

    def __init__(
        self,
        client: redis.asyncio.Redis | None,
        *,
        ttl_s: int = AGREEMENT_TTL_S,
        prefix: str = "sy:shadow:",
    ) -> None:
        self._store: AgreementStorage = (
            MemoryAgreementCounts()
            if client is None
            else RedisAgreementCounts(client, prefix, ttl_s)
        )
        self._pending: dict[Pair, defaultdict[str, float]] = {}
        self._unreachable = False

    def record(self, pair: Pair, counts: Mapping[str, float]) -> None:
        """Count what one mirror showed (added to the store at the next flush)."""
        _add(self._pending, {pair: counts})

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        try:
            await self._store.add(batch)
        except (redis.asyncio.ConnectionError, redis.asyncio.TimeoutError) as error:
            _add(self._pending, batch)
            if not self._unreachable:
                self._unreachable = True
                log.warning("shadow agreement: Redis unreachable (%s)", type(error).__name__)
            return
        except asyncio.CancelledError:
            _add(self._pending, batch)
            raise
        self._unreachable = False

    async def run(self, interval_s: float = 1.0) -> None:
        """Flush every ``interval_s`` until cancelled, then once more if Redis lets."""
        await flush_every(
            self.flush,
            interval_s,
            log,
            "shadow agreement: flush failed; its counters are dropped",
        )

    async def counts(self, pair: Pair) -> dict[str, float]:
        """The pair's counters from every replica, this one's unflushed ones included."""
        found = defaultdict(float, await self._store.counts(pair))
        for field, value in self._pending.get(pair, {}).items():
            found[field] += value
        return dict(found)

    async def reset(self, pair: Pair) -> None:
        """Start the pair's counting afresh (a new shadow of a version)."""
        self._pending.pop(pair, None)
        await self._store.reset(pair)
