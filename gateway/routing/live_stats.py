"""Live figures per model and version over a sliding window, shared by every gateway replica.

A canary rollout compares a canary version with the stable one, and guardrails act on what
they see, so the figures must cover the traffic of every replica, not of one process. Each
replica counts in process on the request path (``record``: no I/O, a few dict updates), adds
its counts to Redis every second or so (``flush``: one pipeline), and ``figures`` sums what
every replica wrote over the last ``window_s`` seconds, plus this process's unflushed counts.

Time is cut into buckets of ``bucket_s`` seconds, numbered ``int(clock() // bucket_s)`` by
each replica's own clock (replicas' clocks should agree to well within a bucket). The window
is the last ``ceil(window_s / bucket_s)`` buckets, the current partial one included, so it
spans between ``window_s - bucket_s`` and ``window_s`` seconds of traffic. A bucket is one
Redis hash per model, version and bucket, ``sy:live:{sentiment:v2}:172800123``: the hash tag
keeps a version's buckets on one Redis Cluster slot. Its fields are HINCRBY counters,
named as ``gateway.routing.live_figures`` says, which also turns them into figures.

A sorted set per model, ``sy:live:{sentiment}:versions``, maps each version to the newest
bucket written, so ``figures`` can find every version active in the window. Every key
expires ``window_s + 2 * bucket_s`` after its last write, so nothing outlives the window.
Model and version names are percent-encoded inside key names (``sentiment`` and ``v2`` stay
as they are, ``a:b`` becomes ``a%3Ab``), so no two (model, version) pairs share a key.

Redis unreachable (``ConnectionError``, ``TimeoutError``): ``flush`` keeps the counts and
adds them at the next flush that succeeds, warning once per outage; buckets that left the
window meanwhile are dropped, as nobody would read them. Delivery is at least once: a flush
that timed out after Redis had applied it is added again. ``figures`` lets Redis errors
propagate: figures from this process alone would pass for every replica's.

Without Redis (``client=None``) ``flush`` moves the counts into in-process buckets
(``gateway.routing.memory.MemoryLiveCounts``) and ``figures`` reads those: the same API
and window over one process's traffic.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import quote

import redis.asyncio

from gateway.routing.interfaces import Bucket, LiveCountStorage
from gateway.routing.live_figures import (
    HISTOGRAM,
    LATENCY_FIELDS,
    PINNED,
    TTFT_FIELDS,
    VersionFigures,
    figures_of,
)
from gateway.routing.memory import MemoryLiveCounts
from switchyard.flush_loop import flush_every

log = logging.getLogger(__name__)

_Counts = defaultdict[str, int]


@functools.lru_cache(maxsize=4096)
def _key_part(name: str) -> str:
    return quote(name, safe="")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _add(into: dict[Bucket, _Counts], buckets: Mapping[Bucket, Mapping[str, int]]) -> None:
    for bucket, counts in buckets.items():
        target = into.get(bucket)
        if target is None:
            target = into[bucket] = defaultdict(int)
        _sum_into(target, counts.items())


def _sum_into(target: _Counts, counts: Iterable[tuple[str, int]]) -> None:
    for field, count in counts:
        target[field] += count


class LiveStats:
    """Sliding-window request figures per model and version, in Redis or in process."""

    def __init__(
        self,
        client: redis.asyncio.Redis | None,
        *,
        window_s: int = 300,
        bucket_s: int = 10,
        prefix: str = "sy:live:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if bucket_s < 1 or window_s < 1:
            raise ValueError("window_s and bucket_s must be at least 1")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.buckets = math.ceil(window_s / bucket_s)
        self._store: LiveCountStorage = (
            MemoryLiveCounts()
            if client is None
            else RedisLiveCounts(client, prefix, ttl_s=window_s + 2 * bucket_s)
        )
        self._clock = clock
        self._pending: dict[Bucket, _Counts] = {}
        self._unreachable = False

    def _window(self) -> tuple[int, int]:
        current = int(self._clock() // self.bucket_s)
        return current - self.buckets + 1, current

    def record(
        self,
        model: str,
        version: str,
        *,
        ok: bool,
        code: str,
        latency_s: float,
        ttft_s: float | None = None,
        labels: Sequence[str] = (),
        assigned: bool = True,
    ) -> None:
        """Count one answered request (``code`` matters only when ``ok`` is False).

        ``labels`` are the labels the request answered, one per classified text; a single
        string counts as one label. ``assigned`` False: the caller chose the version (a
        pin, an allowlist), so guardrails leave the request out.
        """
        key = (model, version, int(self._clock() // self.bucket_s))
        counts = self._pending.get(key)
        if counts is None:
            counts = self._pending[key] = defaultdict(int)
        mark = "" if assigned else PINNED
        counts[mark + "n"] += 1
        if not ok:
            counts[mark + "e"] += 1
            counts[mark + "c:" + code] += 1
        counts[mark + LATENCY_FIELDS[HISTOGRAM.index_of(latency_s)]] += 1
        if ttft_s is not None:
            counts[mark + TTFT_FIELDS[HISTOGRAM.index_of(ttft_s)]] += 1
        if isinstance(labels, str):
            labels = (labels,)
        for label in labels:
            counts[mark + "y:" + label] += 1

    async def flush(self) -> None:
        """Add the counts recorded since the last flush to the store (Redis: one round
        trip; without Redis, this process's buckets).

        Redis unreachable: the counts are kept for the next flush. Any other Redis error
        (a misconfigured server, say) propagates and the counts are dropped, as resending
        them would fail the same way.
        """
        batch, self._pending = self._pending, {}
        oldest, _ = self._window()
        batch = {bucket: counts for bucket, counts in batch.items() if bucket[2] >= oldest}
        try:
            await self._store.add(batch, oldest)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            _add(self._pending, batch)
            if not self._unreachable:
                self._unreachable = True
                log.warning(
                    "live stats: Redis unreachable (%s); counts are kept until it answers",
                    type(error).__name__,
                )
            return
        except asyncio.CancelledError:
            # A flush cancelled at shutdown leaves its counts to the final flush.
            _add(self._pending, batch)
            raise
        if self._unreachable and batch:  # an empty batch did not reach Redis
            self._unreachable = False
            log.info("live stats: Redis answers again; kept counts delivered")

    async def run(self, interval_s: float = 1.0) -> None:
        """Flush every ``interval_s`` until cancelled, then flush once more if Redis lets."""
        await flush_every(
            self.flush, interval_s, log, "live stats: flush failed; its counts are dropped"
        )

    async def figures(
        self,
        model: str,
        versions: Sequence[str] | None = None,
        since: float | None = None,
        assigned_only: bool = False,
    ) -> dict[str, VersionFigures]:
        """Each version's figures over the window, summed over every replica.

        ``versions`` None: every version of ``model`` counted in the window, in name order.
        A named version with nothing counted gets zero figures. ``since`` (epoch seconds)
        leaves out the buckets that began before it, so that figures from before a change
        (a canary's new weight) do not judge it. With Redis this is one pipeline (two round
        trips when ``versions`` is None, to find the versions first). ``assigned_only``
        leaves out pinned and allowlisted requests, as guardrails judge.
        """
        oldest, current = self._window()
        if since is not None:
            oldest = max(oldest, math.ceil(since / self.bucket_s))
        named = None if versions is None else list(dict.fromkeys(versions))
        totals: dict[str, _Counts] = {v: defaultdict(int) for v in named or ()}
        for (m, version, bucket), counts in self._pending.items():
            in_window = m == model and oldest <= bucket <= current
            if in_window and (named is None or version in totals):
                _sum_into(totals.setdefault(version, defaultdict(int)), counts.items())
        stored = await self._store.counts(model, named, oldest, current)
        for version, found in stored.items():
            _sum_into(totals.setdefault(version, defaultdict(int)), found)
        order = named if named is not None else sorted(totals)
        return {v: figures_of(v, self.window_s, totals[v], assigned_only) for v in order}


class RedisLiveCounts:
    """The live counters in Redis, added up by every replica (a ``LiveCountStorage``)."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str, ttl_s: int) -> None:
        self._client = client
        self._prefix = prefix
        self.ttl_s = ttl_s

    def bucket_key(self, model: str, version: str, bucket: int) -> str:
        return f"{self._prefix}{{{_key_part(model)}:{_key_part(version)}}}:{bucket}"

    def versions_key(self, model: str) -> str:
        return f"{self._prefix}{{{_key_part(model)}}}:versions"

    async def add(self, batch: Mapping[Bucket, Mapping[str, int]], oldest: int) -> None:
        """One pipeline: HINCRBY per counter, and each model's newest bucket per version."""
        if not batch:
            return
        newest: dict[str, dict[str, int]] = {}
        async with self._client.pipeline(transaction=False) as pipe:
            for (model, version, bucket), counts in batch.items():
                key = self.bucket_key(model, version, bucket)
                for field, count in counts.items():
                    pipe.hincrby(key, field, count)
                pipe.expire(key, self.ttl_s)
                versions = newest.setdefault(model, {})
                versions[version] = max(bucket, versions.get(version, bucket))
            for model, versions in newest.items():
                key = self.versions_key(model)
                # GT: a replica flushing an older bucket late must not hide a newer one.
                pipe.zadd(key, versions, gt=True)
                pipe.zremrangebyscore(key, "-inf", f"({oldest}")
                pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def counts(
        self, model: str, versions: Sequence[str] | None, oldest: int, current: int
    ) -> dict[str, Iterable[tuple[str, int]]]:
        """One pipeline; two round trips when ``versions`` is None, to find them first."""
        names = versions if versions is not None else await self._seen(model, oldest)
        return dict(await self._read(model, names, range(oldest, current + 1)))

    async def _seen(self, model: str, oldest: int) -> list[str]:
        found = await self._client.zrangebyscore(self.versions_key(model), oldest, "+inf")
        return [_text(v) for v in found if isinstance(v, bytes | str)]

    async def _read(
        self, model: str, versions: Sequence[str], buckets: range
    ) -> dict[str, list[tuple[str, int]]]:
        """Every counter of ``versions`` in ``buckets``, as (field, count) per version."""
        if not versions:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for version in versions:
                for bucket in buckets:
                    pipe.hgetall(self.bucket_key(model, version, bucket))
            replies: list[dict[bytes | str, bytes | str]] = await pipe.execute()
        found: dict[str, list[tuple[str, int]]] = {}
        for position, version in enumerate(versions):
            counts = found[version] = []
            for reply in replies[position * len(buckets) : (position + 1) * len(buckets)]:
                counts.extend((_text(field), int(count)) for field, count in reply.items())
        return found
