"""A closed-loop load generator: C concurrent callers, each calling again when answered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    calls: int
    seconds: float
    latencies_s: list[float]

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def percentile(values: list[float], q: float) -> float:
    """The same nearest-rank percentile as ``LoadResult.percentile_ms``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(
    call: Callable[[int], Awaitable[object]], concurrency: int, total: int
) -> LoadResult:
    """Make ``total`` calls with ``concurrency`` callers; returns throughput and latencies."""
    issued = 0
    latencies: list[float] = []

    async def caller() -> None:
        nonlocal issued
        while issued < total:
            number = issued
            issued += 1
            started = time.perf_counter()
            await call(number)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return LoadResult(total, time.perf_counter() - started, latencies)
