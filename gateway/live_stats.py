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
keeps a version's buckets on one Redis Cluster slot. Its fields are HINCRBY counters, with
short names because every request writes some:

- ``n`` requests, ``e`` errors (``ok=False``), ``c:<code>`` errors by code
- ``l:<bin>`` and ``t:<bin>`` latency and time-to-first-token bins of ``LogHistogram``
- ``y:<label>`` classifier labels answered (y as in the predicted label)

A request the gateway did not assign at random (a pinned or allowlisted version) is
counted under the same names with a ``p`` in front (``pn``, ``pe``, ``pl:<bin>``...):
operators see all of a version's traffic, and guardrails judge only the assigned share
(``assigned_only``), so a caller who pins a version cannot decide its comparison.

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

Without Redis (``client=None``) ``flush`` moves the counts into in-process buckets and
``figures`` reads those: the same API and window over one process's traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from urllib.parse import quote

import redis.asyncio

log = logging.getLogger(__name__)

QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}

PINNED = "p"
"""Prefix of the counters of requests whose version the caller chose (pin, allowlist)."""

# A final flush on shutdown must not hold the shutdown up for long when Redis hangs.
FINAL_FLUSH_TIMEOUT_S = 2.0


class LogHistogram:
    """Bins that grow by a fixed factor, identical in every replica so their counts add up.

    Bin 0 holds everything below ``smallest_s`` (negative durations and NaN included), bin
    ``i`` in ``1..k`` holds ``[smallest_s * growth**(i-1), smallest_s * growth**i)``, and the
    last bin (``overflow``) everything from ``smallest_s * growth**k >= largest_s`` up.

    A quantile reads as the geometric middle of the bin that holds it, which is within a
    factor ``sqrt(growth)`` of any value in that bin: a relative error of at most
    ``relative_error`` (4.9% with growth 1.1) for values in the log-spaced range. Below
    ``smallest_s`` it reads ``smallest_s / 2`` (0.05 ms off at most); in the overflow bin it
    reads the bin's lower edge, a lower bound.

    Changing the layout changes what the stored bin numbers mean: replicas with different
    layouts must not share a key prefix.
    """

    # prometheus_client's Histogram keeps cumulative totals in one process's memory, with no
    # way to add several processes' windows together through Redis; these bins (the layout
    # of a DDSketch with fixed bounds) are plain counters that HINCRBY sums across replicas.

    def __init__(
        self, smallest_s: float = 1e-4, largest_s: float = 600.0, growth: float = 1.1
    ) -> None:
        if not 0 < smallest_s < largest_s or not growth > 1:
            raise ValueError("need 0 < smallest_s < largest_s and growth > 1")
        self.smallest_s = smallest_s
        self.growth = growth
        self._log_growth = math.log(growth)
        self._top_bin = math.ceil(math.log(largest_s / smallest_s) / self._log_growth)
        self._top_s = smallest_s * growth**self._top_bin
        self.overflow = self._top_bin + 1
        self.bins = self.overflow + 1

    @property
    def relative_error(self) -> float:
        return math.sqrt(self.growth) - 1

    def index_of(self, seconds: float) -> int:
        if not seconds >= self.smallest_s:
            return 0
        if seconds >= self._top_s:
            return self.overflow
        # min(): rounding in log() must not push a value just below the top into overflow.
        return min(int(math.log(seconds / self.smallest_s) / self._log_growth) + 1, self._top_bin)

    def middle(self, index: int) -> float:
        """The value (seconds) that stands for every value in bin ``index``."""
        if index <= 0:
            return self.smallest_s / 2
        if index >= self.overflow:
            return self._top_s
        return float(self.smallest_s * self.growth ** (index - 0.5))

    def quantile(self, counts: Mapping[int, int], q: float) -> float | None:
        """The ``q`` quantile (seconds) of the values counted per bin; None when none are.

        The bin whose cumulative count first reaches ``q * n`` (the nearest-rank quantile).
        """
        if not 0 < q <= 1:
            raise ValueError(f"q must be in (0, 1], got {q}")
        total = sum(counts.values())
        if total <= 0:
            return None
        # The epsilon keeps 0.95 * 1000 from ranking 951 through float rounding.
        rank = max(1, math.ceil(q * total - 1e-9))
        seen = 0
        for index in sorted(counts):
            seen += counts[index]
            if seen >= rank:
                return self.middle(index)
        return self.middle(max(counts))


HISTOGRAM = LogHistogram()
_LATENCY_FIELDS = tuple(f"l:{i}" for i in range(HISTOGRAM.bins))
_TTFT_FIELDS = tuple(f"t:{i}" for i in range(HISTOGRAM.bins))


@dataclass(frozen=True)
class VersionFigures:
    """One version's figures over the window, summed over every replica."""

    version: str
    window_s: int
    requests: int
    errors: int  # requests with ok=False
    errors_by_code: dict[str, int]  # e.g. {"503": 3, "504": 1}
    error_rate: float  # errors / requests, 0.0 when there were no requests
    latency_ms: dict[str, float | None]  # {"p50", "p95", "p99"}; None when no samples
    ttft_ms: dict[str, float | None]  # time to first token (streams), same keys
    labels: dict[str, float]  # label -> share of labelled answers (sums to 1), {} when none
    pinned: int = 0  # of ``requests``, those pinned or allowlisted (not assigned at random)

    def public(self) -> dict[str, object]:
        return asdict(self)


_Bucket = tuple[str, str, int]  # model, version, bucket number
_Counts = defaultdict[str, int]


@functools.lru_cache(maxsize=4096)
def _key_part(name: str) -> str:
    return quote(name, safe="")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _add(into: dict[_Bucket, _Counts], buckets: Mapping[_Bucket, Mapping[str, int]]) -> None:
    for bucket, counts in buckets.items():
        target = into.get(bucket)
        if target is None:
            target = into[bucket] = defaultdict(int)
        _sum_into(target, counts.items())


def _sum_into(target: _Counts, counts: Iterable[tuple[str, int]]) -> None:
    for field, count in counts:
        target[field] += count


def _quantiles_ms(bins: Mapping[int, int]) -> dict[str, float | None]:
    found = {name: HISTOGRAM.quantile(bins, q) for name, q in QUANTILES.items()}
    return {name: None if s is None else s * 1000 for name, s in found.items()}


def figures_of(
    version: str, window_s: int, counts: Mapping[str, int], assigned_only: bool = False
) -> VersionFigures:
    """The figures that one version's summed counters describe: of all its requests, or
    (``assigned_only``) of those the gateway assigned at random, leaving pins out."""
    by_code: dict[str, int] = defaultdict(int)
    latency: dict[int, int] = defaultdict(int)
    ttft: dict[int, int] = defaultdict(int)
    labels: dict[str, int] = defaultdict(int)
    requests = errors = 0
    for field, count in counts.items():
        if field.startswith(PINNED):
            if assigned_only:
                continue
            field = field[len(PINNED) :]
        kind, _, name = field.partition(":")
        if kind == "n":
            requests += count
        elif kind == "e":
            errors += count
        elif kind == "c":
            by_code[name] += count
        elif kind == "l":
            latency[int(name)] += count
        elif kind == "t":
            ttft[int(name)] += count
        elif kind == "y":
            labels[name] += count
    labelled = sum(labels.values())
    return VersionFigures(
        version=version,
        window_s=window_s,
        requests=requests,
        errors=errors,
        errors_by_code=dict(sorted(by_code.items())),
        error_rate=errors / requests if requests else 0.0,
        latency_ms=_quantiles_ms(latency),
        ttft_ms=_quantiles_ms(ttft),
        labels={k: c / labelled for k, c in sorted(labels.items())} if labelled else {},
        pinned=0 if assigned_only else counts.get(PINNED + "n", 0),
    )


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
        self._client = client
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.buckets = math.ceil(window_s / bucket_s)
        self.ttl_s = window_s + 2 * bucket_s
        self._prefix = prefix
        self._clock = clock
        self._pending: dict[_Bucket, _Counts] = {}
        self._local: dict[_Bucket, _Counts] = {}  # client None: the flushed counts
        self._unreachable = False

    def bucket_key(self, model: str, version: str, bucket: int) -> str:
        return f"{self._prefix}{{{_key_part(model)}:{_key_part(version)}}}:{bucket}"

    def versions_key(self, model: str) -> str:
        return f"{self._prefix}{{{_key_part(model)}}}:versions"

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
        counts[mark + _LATENCY_FIELDS[HISTOGRAM.index_of(latency_s)]] += 1
        if ttft_s is not None:
            counts[mark + _TTFT_FIELDS[HISTOGRAM.index_of(ttft_s)]] += 1
        if isinstance(labels, str):
            labels = (labels,)
        for label in labels:
            counts[mark + "y:" + label] += 1

    async def flush(self) -> None:
        """Add the counts recorded since the last flush to Redis, in one round trip.

        Redis unreachable: the counts are kept for the next flush. Any other Redis error
        (a misconfigured server, say) propagates and the counts are dropped, as resending
        them would fail the same way.
        """
        batch, self._pending = self._pending, {}
        oldest, _ = self._window()
        batch = {bucket: counts for bucket, counts in batch.items() if bucket[2] >= oldest}
        if self._client is None:
            _add(self._local, batch)
            self._local = {b: c for b, c in self._local.items() if b[2] >= oldest}
            return
        if not batch:
            return
        try:
            await self._write(self._client, batch, oldest)
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
        if self._unreachable:
            self._unreachable = False
            log.info("live stats: Redis answers again; kept counts delivered")

    async def _write(
        self, client: redis.asyncio.Redis, batch: Mapping[_Bucket, _Counts], oldest: int
    ) -> None:
        newest: dict[str, dict[str, int]] = {}
        async with client.pipeline(transaction=False) as pipe:
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

    async def run(self, interval_s: float = 1.0) -> None:
        """Flush every ``interval_s`` until cancelled, then flush once more if Redis lets."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.flush()
                except Exception:
                    log.exception("live stats: flush failed; its counts are dropped")
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(FINAL_FLUSH_TIMEOUT_S):
                    await self.flush()

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
        local = [self._pending] if self._client is not None else [self._pending, self._local]
        for source in local:
            for (m, version, bucket), counts in source.items():
                in_window = m == model and oldest <= bucket <= current
                if in_window and (named is None or version in totals):
                    _sum_into(totals.setdefault(version, defaultdict(int)), counts.items())
        if self._client is not None:
            names = named if named is not None else await self._seen(self._client, model, oldest)
            read = await self._read(self._client, model, names, range(oldest, current + 1))
            for version, found in read.items():
                _sum_into(totals.setdefault(version, defaultdict(int)), found)
        order = named if named is not None else sorted(totals)
        return {v: figures_of(v, self.window_s, totals[v], assigned_only) for v in order}

    async def _seen(self, client: redis.asyncio.Redis, model: str, oldest: int) -> list[str]:
        found = await client.zrangebyscore(self.versions_key(model), oldest, "+inf")
        return [_text(v) for v in found if isinstance(v, bytes | str)]

    async def _read(
        self, client: redis.asyncio.Redis, model: str, versions: Sequence[str], buckets: range
    ) -> dict[str, list[tuple[str, int]]]:
        """Every counter of ``versions`` in ``buckets``, as (field, count) per version."""
        if not versions:
            return {}
        async with client.pipeline(transaction=False) as pipe:
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
