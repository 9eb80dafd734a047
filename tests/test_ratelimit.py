"""The rate limiters, the Redis one against a real redis-server and the in-process one,
through the same tests: GCRA burst, UTC-day quota, token budget and stream leases. Tests
of what only Redis has (its scripts, keys and connections) take the Redis one alone. Time
moves through ``now_ms`` (no sleeps); the few tests that use the limiter's own clock only
assert what holds whatever the wall clock does."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime

import pytest
import redis.exceptions
from redis.asyncio import Redis

from gateway.limits.interfaces import LimitStorage
from gateway.limits.memory import MemoryRateLimiter
from gateway.limits.ratelimit import RateLimiter
from switchyard.redis_server import LocalRedis
from tests.support import free_port


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


# Noon UTC, far from a day boundary; tests add offsets in ms.
T0 = ms(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))
S = 1000  # one second in ms


@pytest.fixture
def prefix() -> str:
    return f"test:rl:{uuid.uuid4().hex}:"


@pytest.fixture
def redis_limiter(client: Redis, prefix: str) -> RateLimiter:
    return RateLimiter(client, prefix=prefix)


@pytest.fixture(params=["redis", "in process"])
def limiter(request: pytest.FixtureRequest, client: Redis, prefix: str) -> LimitStorage:
    if request.param == "redis":
        return RateLimiter(client, prefix=prefix)
    return MemoryRateLimiter()


@pytest.fixture
def subject() -> str:
    return f"key:{uuid.uuid4().hex[:8]}"


async def test_a_fresh_subject_gets_exactly_per_minute_then_a_minute_refusal(
    limiter: LimitStorage, subject: str
) -> None:
    decisions = [await limiter.hit(subject, 10, None, now_ms=T0) for _ in range(10)]
    assert all(d.allowed and d.limit == "" and d.retry_after_s == 0 for d in decisions)
    assert [d.remaining_minute for d in decisions] == list(range(9, -1, -1))
    assert [d.reset_s for d in decisions] == [6 * n for n in range(1, 11)]

    refused = await limiter.hit(subject, 10, None, now_ms=T0)
    assert not refused.allowed
    assert refused.limit == "minute"
    assert refused.remaining_minute == 0
    assert refused.retry_after_s == 6  # one emission interval: 60 s / 10
    assert refused.reset_s == 60
    assert refused.remaining_day is None
    assert (refused.per_minute, refused.per_day) == (10, None)


async def test_two_replicas_on_separate_connections_share_one_limit(
    redis_server: LocalRedis, prefix: str, subject: str
) -> None:
    first = Redis.from_url(redis_server.url)
    second = Redis.from_url(redis_server.url)
    try:
        replicas = [RateLimiter(first, prefix=prefix), RateLimiter(second, prefix=prefix)]
        allowed = [
            (await replicas[n % 2].hit(subject, 7, None, now_ms=T0 + n)).allowed for n in range(20)
        ]
    finally:
        await first.aclose()
        await second.aclose()
    assert allowed == [True] * 7 + [False] * 13


async def test_a_burst_at_a_window_edge_is_not_doubled(limiter: LimitStorage, subject: str) -> None:
    burst_at = T0 + 59_900
    assert all([(await limiter.hit(subject, 10, None, now_ms=burst_at)).allowed for _ in range(10)])
    # A fixed per-minute window would reset at 60 s and grant ten more here.
    after_edge = [await limiter.hit(subject, 10, None, now_ms=T0 + 60_100) for _ in range(10)]
    assert not any(d.allowed for d in after_edge)
    assert {d.retry_after_s for d in after_edge} == {6}  # 5.8 s, rounded up
    # One interval (6 s) after the burst, exactly one more.
    assert (await limiter.hit(subject, 10, None, now_ms=burst_at + 6 * S)).allowed
    assert not (await limiter.hit(subject, 10, None, now_ms=burst_at + 6 * S)).allowed


async def test_no_span_ever_exceeds_the_burst_plus_its_refill(
    limiter: LimitStorage, subject: str
) -> None:
    """Bursty random traffic: any k granted requests between t1 and tk satisfy
    k <= per_minute + (tk - t1) / interval, so any 60 s span holds at most 2 * per_minute."""
    per_minute, interval_ms = 6, 10 * S
    rng = random.Random(7)
    now, granted = T0, []
    while now < T0 + 300 * S:
        for _ in range(rng.choice([1, 1, 1, 5, 20])):
            if (await limiter.hit(subject, per_minute, None, now_ms=now)).allowed:
                granted.append(now)
        now += rng.randrange(0, 4 * S)
    assert len(granted) >= per_minute + 20  # the traffic did saturate the limit
    for i in range(len(granted)):
        for j in range(i, len(granted)):
            assert j - i + 1 <= per_minute + (granted[j] - granted[i]) / interval_ms


async def test_saturating_traffic_gets_the_burst_then_one_per_interval(
    limiter: LimitStorage, subject: str
) -> None:
    times = [T0 + n * 100 for n in range(1800)]  # every 100 ms for 180 s
    granted = [t for t in times if (await limiter.hit(subject, 6, None, now_ms=t)).allowed]
    # Six at once (t = 0 .. 0.5 s), then one every 10 s: 10 s, 20 s, ..., 170 s.
    assert granted == [T0 + n * 100 for n in range(6)] + [T0 + n * 10 * S for n in range(1, 18)]


async def test_one_more_is_allowed_after_each_interval(limiter: LimitStorage, subject: str) -> None:
    for _ in range(4):
        assert (await limiter.hit(subject, 4, None, now_ms=T0)).allowed  # interval 15 s
    almost = await limiter.hit(subject, 4, None, now_ms=T0 + 15 * S - 1)
    assert not almost.allowed
    assert almost.retry_after_s == 1  # 1 ms, rounded up
    recovered = await limiter.hit(subject, 4, None, now_ms=T0 + 15 * S)
    assert recovered.allowed
    assert recovered.remaining_minute == 0
    again = await limiter.hit(subject, 4, None, now_ms=T0 + 15 * S)
    assert not again.allowed
    assert again.retry_after_s == 15
    # After a full minute of quiet the whole burst is back.
    rested = await limiter.hit(subject, 4, None, now_ms=T0 + 75 * S)
    assert rested.allowed
    assert rested.remaining_minute == 3
    assert rested.reset_s == 15


async def test_the_daily_cap_refuses_with_day_and_resets_at_utc_midnight(
    limiter: LimitStorage, subject: str
) -> None:
    late = ms(datetime(2030, 1, 1, 23, 59, 0, tzinfo=UTC))
    decisions = [await limiter.hit(subject, 100, 3, now_ms=late) for _ in range(3)]
    assert [d.remaining_day for d in decisions] == [2, 1, 0]
    assert all(d.allowed and d.day_reset_s == 60 for d in decisions)

    for _ in range(5):
        refused = await limiter.hit(subject, 100, 3, now_ms=late)
        assert (refused.allowed, refused.limit, refused.remaining_day) == (False, "day", 0)
        assert refused.remaining_minute == 97  # the refusals took nothing from the burst
    later = await limiter.hit(subject, 100, 3, now_ms=late + 30 * S)
    assert (later.allowed, later.limit) == (False, "day")
    assert later.day_reset_s == later.retry_after_s == 30

    midnight = ms(datetime(2030, 1, 2, tzinfo=UTC))
    next_day = await limiter.hit(subject, 100, 3, now_ms=midnight)
    assert next_day.allowed
    assert next_day.remaining_day == 2
    assert next_day.day_reset_s == 86_400


async def test_a_minute_refusal_does_not_consume_the_daily_quota(
    limiter: LimitStorage, subject: str
) -> None:
    assert [(await limiter.hit(subject, 2, 10, now_ms=T0)).remaining_day for _ in range(2)] == [
        9,
        8,
    ]
    for _ in range(5):
        refused = await limiter.hit(subject, 2, 10, now_ms=T0 + S)
        assert (refused.allowed, refused.limit, refused.remaining_day) == (False, "minute", 8)
        assert refused.retry_after_s == 29  # interval 30 s, 1 s of it already passed
    later = await limiter.hit(subject, 2, 10, now_ms=T0 + 30 * S)
    assert (later.allowed, later.remaining_day) == (True, 7)


async def test_when_both_limits_refuse_day_wins_and_retry_waits_for_both(
    limiter: LimitStorage, subject: str
) -> None:
    late = ms(datetime(2030, 1, 1, 23, 59, 58, tzinfo=UTC))
    assert (await limiter.hit(subject, 1, 1, now_ms=late)).allowed
    refused = await limiter.hit(subject, 1, 1, now_ms=late)
    assert (refused.allowed, refused.limit) == (False, "day")
    assert refused.day_reset_s == 2
    assert refused.retry_after_s == 60  # the burst (1 per minute) is the longer wait


@pytest.mark.parametrize(("per_minute", "per_day"), [(20, None), (1000, 20)])
async def test_concurrent_hits_allow_exactly_the_limit(
    limiter: LimitStorage, subject: str, per_minute: int, per_day: int | None
) -> None:
    decisions = await asyncio.gather(
        *(limiter.hit(subject, per_minute, per_day, now_ms=T0) for _ in range(50))
    )
    assert sum(d.allowed for d in decisions) == 20
    assert {d.limit for d in decisions if not d.allowed} == {"minute" if per_day is None else "day"}


async def test_redis_time_is_used_without_an_override(limiter: LimitStorage, subject: str) -> None:
    first = await limiter.hit(subject, 1, 5)
    assert first.allowed
    assert 1 <= first.day_reset_s <= 86_400
    refused = await limiter.hit(subject, 1, 5)
    assert (refused.allowed, refused.limit, refused.remaining_day) == (False, "minute", 4)
    assert 1 <= refused.retry_after_s <= 60


async def test_no_daily_cap_writes_no_day_counter(
    client: Redis, redis_limiter: RateLimiter, subject: str
) -> None:
    decision = await redis_limiter.hit(subject, 5, None, now_ms=T0)
    assert decision.remaining_day is None
    assert not await client.exists(redis_limiter.key(subject, "day"))


async def test_a_client_decoding_responses_gets_the_same_decisions(
    redis_server: LocalRedis, prefix: str, subject: str
) -> None:
    decoding = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        limiter = RateLimiter(decoding, prefix=prefix)
        assert (await limiter.hit(subject, 1, None, now_ms=T0)).limit == ""
        assert (await limiter.hit(subject, 1, None, now_ms=T0)).limit == "minute"
    finally:
        await decoding.aclose()


async def test_a_flushed_script_cache_is_reloaded(
    client: Redis, redis_limiter: RateLimiter, subject: str
) -> None:
    assert (await redis_limiter.hit(subject, 2, None, now_ms=T0)).allowed
    await client.script_flush()
    assert (await redis_limiter.hit(subject, 2, None, now_ms=T0)).remaining_minute == 0


async def test_invalid_limits_are_refused_before_redis(limiter: LimitStorage, subject: str) -> None:
    with pytest.raises(ValueError, match="per_minute"):
        await limiter.hit(subject, 0, None)
    with pytest.raises(ValueError, match="per_day"):
        await limiter.hit(subject, 1, -1)
    with pytest.raises(ValueError, match="tokens"):
        await limiter.spend_tokens(subject, -1)
    with pytest.raises(ValueError, match="lease_s"):
        await limiter.open_stream(subject, 1, lease_s=0)


async def test_redis_errors_propagate_as_they_are() -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await RateLimiter(unreachable).hit("key:down", 10, 100)
    finally:
        await unreachable.aclose()


async def test_the_token_budget_counts_spending_per_utc_day(
    limiter: LimitStorage, subject: str
) -> None:
    assert await limiter.tokens_left(subject, 1000, now_ms=T0) == 1000
    await limiter.spend_tokens(subject, 300, now_ms=T0)
    assert await limiter.tokens_left(subject, 1000, now_ms=T0) == 700
    await limiter.spend_tokens(subject, 0, now_ms=T0)
    await limiter.spend_tokens(subject, 800, now_ms=T0 + S)  # the last stream overshot
    assert await limiter.tokens_left(subject, 1000, now_ms=T0 + S) == 0
    assert await limiter.tokens_used(subject, now_ms=T0 + S) == 1100
    assert await limiter.tokens_left(subject, None, now_ms=T0) is None
    tomorrow = ms(datetime(2030, 1, 2, tzinfo=UTC))
    assert await limiter.tokens_left(subject, 1000, now_ms=tomorrow) == 1000


async def test_the_token_budget_with_redis_time(limiter: LimitStorage, subject: str) -> None:
    await limiter.spend_tokens(subject, 40)
    assert await limiter.tokens_left(subject, 100) == 60
    assert await limiter.tokens_left(subject, None) is None


async def test_at_most_max_streams_leases_and_closing_frees_a_slot(
    limiter: LimitStorage, subject: str
) -> None:
    first = await limiter.open_stream(subject, 2)
    second = await limiter.open_stream(subject, 2)
    assert first is not None and second is not None and first != second
    assert await limiter.open_stream(subject, 2) is None
    await limiter.close_stream(subject, first)
    await limiter.close_stream(subject, first)  # closing twice is harmless
    third = await limiter.open_stream(subject, 2)
    assert third is not None
    assert await limiter.open_stream(subject, 2) is None
    assert await limiter.open_stream(subject, 0) is None


async def test_concurrent_opens_take_exactly_max_streams(
    limiter: LimitStorage, subject: str
) -> None:
    leases = await asyncio.gather(*(limiter.open_stream(subject, 5) for _ in range(30)))
    assert len({lease for lease in leases if lease is not None}) == 5


async def test_an_expired_lease_frees_its_slot(limiter: LimitStorage, subject: str) -> None:
    crashed = await limiter.open_stream(subject, 1, lease_s=10, now_ms=T0)
    assert crashed is not None
    assert await limiter.open_stream(subject, 1, lease_s=10, now_ms=T0 + 9_999) is None
    replacement = await limiter.open_stream(subject, 1, lease_s=10, now_ms=T0 + 10 * S)
    assert replacement is not None
    assert not await limiter.renew_stream(subject, crashed, now_ms=T0 + 10 * S)


async def test_renewing_a_lease_keeps_its_slot(limiter: LimitStorage, subject: str) -> None:
    lease = await limiter.open_stream(subject, 1, lease_s=10, now_ms=T0)
    assert lease is not None
    assert await limiter.renew_stream(subject, lease, lease_s=10, now_ms=T0 + 8 * S)
    assert await limiter.open_stream(subject, 1, lease_s=10, now_ms=T0 + 15 * S) is None
    assert await limiter.open_stream(subject, 1, lease_s=10, now_ms=T0 + 18 * S) is not None


async def test_every_key_has_a_ttl(client: Redis, redis_limiter: RateLimiter, prefix: str) -> None:
    subject = "key:ttl"
    await redis_limiter.hit(subject, 10, 100)
    await redis_limiter.spend_tokens(subject, 5)
    assert await redis_limiter.open_stream(subject, 3, lease_s=30) is not None
    ttls = {key.decode(): await client.ttl(key) async for key in client.scan_iter(f"{prefix}*")}
    assert set(ttls) == {
        redis_limiter.key(subject, kind) for kind in ("gcra", "day", "tokens", "streams")
    }
    assert 0 < ttls[redis_limiter.key(subject, "gcra")] <= 6
    assert 0 < ttls[redis_limiter.key(subject, "day")] <= 86_400
    assert 0 < ttls[redis_limiter.key(subject, "tokens")] <= 86_400
    assert 0 < ttls[redis_limiter.key(subject, "streams")] <= 30
    # A refusal writes nothing, so it cannot leave a key without a TTL either.
    await redis_limiter.hit("key:never-allowed", 1, 0)
    assert not await client.exists(redis_limiter.key("key:never-allowed", "day"))
