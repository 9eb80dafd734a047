"""Live figures per model and version against a real redis-server, and in process.

Time moves through the ``clock`` argument (no sleeps); each test writes under a prefix of its
own, so tests sharing the session's Redis never see each other's keys."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.routing.live_figures import HISTOGRAM, LogHistogram, VersionFigures
from gateway.routing.live_stats import LiveStats
from switchyard.redis_server import LocalRedis, local_redis
from tests.support import free_port

T0 = 2_000_000_000.0  # a multiple of every bucket_s used here: T0 starts a bucket


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prefix() -> str:
    return f"test:live:{uuid.uuid4().hex}:"


@pytest.fixture
async def connect(redis_server: LocalRedis) -> AsyncIterator[Callable[[], Redis]]:
    """New connections to the session's Redis (one per replica), closed after the test."""
    opened: list[Redis] = []

    def new() -> Redis:
        opened.append(Redis.from_url(redis_server.url))
        return opened[-1]

    yield new
    for connection in opened:
        await connection.aclose()


@pytest.fixture
def replica(
    connect: Callable[[], Redis], prefix: str, clock: FakeClock
) -> Callable[..., LiveStats]:
    """A LiveStats as one gateway replica would have it, on its own connection."""

    def new(**options: int) -> LiveStats:
        return LiveStats(connect(), prefix=prefix, clock=clock, **options)

    return new


def nearest_rank(values: list[float], q: float) -> float:
    return sorted(values)[math.ceil(q * len(values)) - 1]


def assert_close(measured: float | None, exact: float) -> None:
    assert measured is not None
    assert abs(measured - exact) / exact <= HISTOGRAM.relative_error + 1e-12, (measured, exact)


async def test_two_replicas_add_up_and_a_reader_sees_its_own_unflushed_counts(
    replica: Callable[..., LiveStats],
) -> None:
    first, second = replica(), replica()
    for _ in range(6):
        first.record("sentiment", "v2", ok=True, code="ok", latency_s=0.02, labels=["positive"])
    first.record("sentiment", "v2", ok=True, code="ok", latency_s=0.02, labels=["negative"] * 2)
    for _ in range(2):
        first.record("sentiment", "v2", ok=False, code="unavailable", latency_s=0.5)
    for _ in range(3):
        second.record("sentiment", "v2", ok=True, code="ok", latency_s=0.03, labels=["negative"])
    second.record("sentiment", "v2", ok=False, code="deadline_exceeded", latency_s=2.0)
    second.record("sentiment", "v2", ok=False, code="unavailable", latency_s=0.5)
    await first.flush()
    await second.flush()

    figures = (await first.figures("sentiment", ["v2"]))["v2"]
    assert figures.requests == 14
    assert figures.errors == 4
    assert figures.errors_by_code == {"deadline_exceeded": 1, "unavailable": 3}
    assert figures.error_rate == pytest.approx(4 / 14)
    assert figures.labels == pytest.approx({"negative": 5 / 11, "positive": 6 / 11})
    assert figures.ttft_ms == {"p50": None, "p95": None, "p99": None}
    assert figures == (await second.figures("sentiment", ["v2"]))["v2"]

    second.record("sentiment", "v2", ok=False, code="internal", latency_s=0.1)
    unflushed = (await second.figures("sentiment", ["v2"]))["v2"]
    assert (unflushed.requests, unflushed.errors_by_code["internal"]) == (15, 1)
    assert (await first.figures("sentiment", ["v2"]))["v2"].requests == 14
    await second.flush()
    assert (await first.figures("sentiment", ["v2"]))["v2"] == unflushed


@pytest.mark.parametrize("mode", ["redis", "in process"])
async def test_pinned_requests_are_shown_but_left_out_of_what_guardrails_judge(
    mode: str, replica: Callable[..., LiveStats], clock: FakeClock
) -> None:
    stats = replica() if mode == "redis" else LiveStats(None, clock=clock)
    for _ in range(3):
        stats.record("sentiment", "v2", ok=True, code="200", latency_s=0.02, labels=["positive"])
    for _ in range(50):  # one caller pinning v2 with a budget nobody could meet
        stats.record("sentiment", "v2", ok=False, code="504", latency_s=9.0, assigned=False)
    stats.record("sentiment", "v2", ok=True, code="200", latency_s=0.02, labels=["negative"])
    await stats.flush()

    everything = (await stats.figures("sentiment", ["v2"]))["v2"]
    assert (everything.requests, everything.pinned, everything.errors) == (54, 50, 50)
    assert everything.errors_by_code == {"504": 50}
    assert everything.latency_ms["p50"] is not None and everything.latency_ms["p50"] > 1000

    judged = (await stats.figures("sentiment", ["v2"], assigned_only=True))["v2"]
    assert (judged.requests, judged.pinned, judged.errors, judged.error_rate) == (4, 0, 0, 0.0)
    assert judged.latency_ms["p99"] is not None and judged.latency_ms["p99"] < 100
    assert judged.labels == pytest.approx({"negative": 0.25, "positive": 0.75})


def test_histogram_quantiles_are_within_the_documented_relative_error() -> None:
    histogram = LogHistogram()
    assert histogram.relative_error == pytest.approx(0.0488, abs=1e-4)
    assert histogram.bins < 200  # a bin's field name is written per request
    values = [ms / 1000 for ms in range(1, 1001)]
    counts: dict[int, int] = {}
    for value in values:
        index = histogram.index_of(value)
        counts[index] = counts.get(index, 0) + 1
    for q in (0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
        assert_close(histogram.quantile(counts, q), nearest_rank(values, q))
    assert histogram.quantile({}, 0.5) is None


def test_histogram_edges() -> None:
    histogram = LogHistogram()
    for nonsense in (0.0, -1.0, float("nan"), 1e-6):
        assert histogram.index_of(nonsense) == 0
    for huge in (615.0, 1e6, float("inf")):  # the overflow bin starts at 1.1**164 * 0.1 ms
        assert histogram.index_of(huge) == histogram.overflow
    assert histogram.quantile({histogram.overflow: 1}, 0.5) == pytest.approx(600.0, rel=0.1)
    for index in range(1, histogram.overflow):
        assert histogram.index_of(histogram.middle(index)) == index
    with pytest.raises(ValueError):
        histogram.quantile({1: 1}, 0.0)


async def test_quantiles_merged_over_replicas(replica: Callable[..., LiveStats]) -> None:
    first, second = replica(), replica()
    latencies = [ms / 1000 for ms in range(1, 1001)]
    ttfts = [s / 7 for s in latencies]
    shuffled = list(zip(latencies, ttfts, strict=True))
    random.Random(7).shuffle(shuffled)
    for position, (latency, ttft) in enumerate(shuffled):
        stats = first if position % 2 else second
        stats.record("summarizer", "v1", ok=True, code="ok", latency_s=latency, ttft_s=ttft)
    await first.flush()
    await second.flush()

    figures = (await first.figures("summarizer"))["v1"]
    assert figures.requests == 1000
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert_close(figures.latency_ms[name], nearest_rank(latencies, q) * 1000)
        assert_close(figures.ttft_ms[name], nearest_rank(ttfts, q) * 1000)


async def test_the_window_slides_and_every_key_expires(
    replica: Callable[..., LiveStats], clock: FakeClock, connect: Callable[[], Redis], prefix: str
) -> None:
    stats = replica(window_s=60, bucket_s=10)
    for _ in range(5):
        stats.record("sentiment", "v1", ok=True, code="ok", latency_s=0.01)
    await stats.flush()
    clock.now = T0 + 30
    for _ in range(2):
        stats.record("sentiment", "v1", ok=False, code="unavailable", latency_s=0.01)
    await stats.flush()

    async def requests() -> dict[str, int]:
        return {v: f.requests for v, f in (await stats.figures("sentiment")).items()}

    assert await requests() == {"v1": 7}
    clock.now = T0 + 59.9  # the first bucket is the oldest of six
    assert await requests() == {"v1": 7}
    clock.now = T0 + 60  # ... and now out
    assert await requests() == {"v1": 2}
    figures = (await stats.figures("sentiment"))["v1"]
    assert (figures.errors, figures.error_rate) == (2, 1.0)
    clock.now = T0 + 90
    assert await requests() == {}
    assert (await stats.figures("sentiment", ["v1"]))["v1"].requests == 0

    client = connect()
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    assert f"{prefix}{{sentiment:v1}}:{int(T0 // 10)}".encode() in keys
    assert f"{prefix}{{sentiment}}:versions".encode() in keys
    assert len(keys) == 3
    for key in keys:
        assert 0 < await client.ttl(key) <= 60 + 2 * 10


async def test_figures_since_a_change_leave_out_the_buckets_begun_before_it(
    replica: Callable[..., LiveStats], clock: FakeClock
) -> None:
    stats = replica(window_s=60, bucket_s=10)
    for _ in range(4):
        stats.record("sentiment", "v2", ok=False, code="503", latency_s=0.5)
    await stats.flush()
    changed = T0 + 12  # a new weight set two seconds into the second bucket
    clock.now = T0 + 15
    stats.record("sentiment", "v2", ok=True, code="200", latency_s=0.01)
    clock.now = T0 + 21
    for _ in range(3):
        stats.record("sentiment", "v2", ok=True, code="200", latency_s=0.01)
    await stats.flush()
    everything = (await stats.figures("sentiment", ["v2"]))["v2"]
    assert (everything.requests, everything.errors) == (8, 4)
    since = (await stats.figures("sentiment", ["v2"], since=changed))["v2"]
    # Only whole buckets after the change: the one it fell in may hold older counts.
    assert (since.requests, since.errors) == (3, 0)


async def test_counts_that_left_the_window_unflushed_are_not_sent(
    replica: Callable[..., LiveStats], clock: FakeClock, connect: Callable[[], Redis], prefix: str
) -> None:
    stats = replica(window_s=60, bucket_s=10)
    stats.record("sentiment", "v1", ok=True, code="ok", latency_s=0.01)
    clock.now = T0 + 60
    assert await stats.figures("sentiment") == {}
    await stats.flush()
    assert [key async for key in connect().scan_iter(match=f"{prefix}*")] == []


async def test_redis_down_keeps_the_counts_until_it_is_back(
    tmp_path: Path, clock: FakeClock, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    workdir = tmp_path / "redis"
    server = LocalRedis(workdir, port)
    url = server.url
    # One quick retry, so an unreachable Redis fails the flush at once.
    writer_client = Redis.from_url(
        url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 1)
    )
    writer = LiveStats(writer_client, prefix=prefix, clock=clock)

    async def read() -> VersionFigures:
        # A connection of its own each time: redis-py does not retry a pipeline on a pooled
        # connection that the restart closed.
        reader_client = Redis.from_url(url)
        try:
            reader = LiveStats(reader_client, prefix=prefix, clock=clock)
            return (await reader.figures("sentiment"))["v2"]
        finally:
            await reader_client.aclose()

    caplog.set_level(logging.INFO, logger="gateway.routing.live_stats")
    try:
        for _ in range(3):
            writer.record("sentiment", "v2", ok=True, code="ok", latency_s=0.01)
        await writer.flush()
        assert (await read()).requests == 3

        server.stop()
        for _ in range(2):
            writer.record("sentiment", "v2", ok=False, code="unavailable", latency_s=0.01)
        await writer.flush()
        writer.record("sentiment", "v2", ok=True, code="ok", latency_s=0.01, labels=["positive"])
        await writer.flush()
        await writer.flush()
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "unreachable" in warnings[0].getMessage()
        with pytest.raises(redis.exceptions.ConnectionError):
            await writer.figures("sentiment")

        # A new server on the same port, empty: what it holds is only what was kept.
        with local_redis(workdir, port):
            await writer.flush()
            figures = await read()
            assert (figures.requests, figures.errors_by_code) == (3, {"unavailable": 2})
            assert figures.labels == {"positive": 1.0}
            assert any("answers again" in r.getMessage() for r in caplog.records)
            await writer.flush()  # nothing pending: nothing is sent twice
            assert (await read()).requests == 3
    finally:
        server.stop()
        await writer_client.aclose()


def record_a_mix(stats: LiveStats, clock: FakeClock, seed: int) -> None:
    rng = random.Random(seed)
    for step in range(400):
        clock.now = T0 + step * 0.5
        ok = rng.random() > 0.1
        stats.record(
            "sentiment",
            rng.choice(["v1", "v2"]),
            ok=ok,
            code="ok" if ok else rng.choice(["unavailable", "deadline_exceeded"]),
            latency_s=rng.lognormvariate(-4, 1),
            ttft_s=rng.lognormvariate(-5, 1) if rng.random() < 0.3 else None,
            labels=rng.choices(["negative", "positive"], k=rng.randint(0, 3)),
        )


async def test_in_process_and_redis_give_the_same_figures(
    replica: Callable[..., LiveStats], clock: FakeClock
) -> None:
    shared = replica(window_s=120, bucket_s=10)
    alone = LiveStats(None, window_s=120, bucket_s=10, clock=clock)
    record_a_mix(shared, clock, seed=3)
    end = clock.now
    record_a_mix(alone, clock, seed=3)

    unflushed = await alone.figures("sentiment")
    assert set(unflushed) == {"v1", "v2"}
    assert unflushed == await shared.figures("sentiment")
    await shared.flush()
    await alone.flush()
    assert await alone.figures("sentiment") == unflushed
    assert await shared.figures("sentiment") == unflushed

    clock.now = end + 60  # half of what was recorded has left the window
    partly = await alone.figures("sentiment")
    assert 0 < sum(f.requests for f in partly.values()) < 400
    assert partly == await shared.figures("sentiment")
    assert await alone.figures("sentiment", ["v2", "v9"]) == await shared.figures(
        "sentiment", ["v2", "v9"]
    )


@pytest.mark.parametrize("mode", ["redis", "in process"])
async def test_versions_of_one_model_apart_from_other_models(
    mode: str, replica: Callable[..., LiveStats], clock: FakeClock
) -> None:
    stats = replica() if mode == "redis" else LiveStats(None, clock=clock)
    for version in ("v1", "v2", "canary-3"):
        stats.record("sentiment", version, ok=True, code="ok", latency_s=0.01)
    stats.record("ner", "v1", ok=False, code="internal", latency_s=0.2)
    stats.record("ner", "v1", ok=True, code="ok", latency_s=0.2, labels=["PER", "LOC"])
    # ':' separates model from version inside keys: names that hold one stay apart.
    stats.record("a:b", "c", ok=True, code="ok", latency_s=0.01)
    stats.record("a", "b:c", ok=False, code="internal", latency_s=0.01)
    await stats.flush()

    sentiment = await stats.figures("sentiment")
    assert list(sentiment) == ["canary-3", "v1", "v2"]
    assert all(f.requests == 1 and f.errors == 0 for f in sentiment.values())
    ner = await stats.figures("ner")
    assert list(ner) == ["v1"]
    assert (ner["v1"].requests, ner["v1"].error_rate) == (2, 0.5)
    assert ner["v1"].labels == {"LOC": 0.5, "PER": 0.5}
    assert (await stats.figures("a:b"))["c"].errors == 0
    assert (await stats.figures("a"))["b:c"].errors == 1

    named = await stats.figures("sentiment", ["v2", "v9"])
    assert list(named) == ["v2", "v9"]
    assert named["v9"] == VersionFigures(
        version="v9",
        window_s=300,
        requests=0,
        errors=0,
        errors_by_code={},
        error_rate=0.0,
        latency_ms={"p50": None, "p95": None, "p99": None},
        ttft_ms={"p50": None, "p95": None, "p99": None},
        labels={},
    )
    assert json.loads(json.dumps(ner["v1"].public()))["errors_by_code"] == {"internal": 1}


async def test_run_flushes_and_flushes_once_more_when_cancelled(
    replica: Callable[..., LiveStats],
) -> None:
    writer, reader = replica(), replica()
    task = asyncio.create_task(writer.run(interval_s=3600))
    await asyncio.sleep(0)  # let the loop start waiting
    writer.record("sentiment", "v1", ok=True, code="ok", latency_s=0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await reader.figures("sentiment"))["v1"].requests == 1
