"""The key store against a real redis-server: a key checked and its request counted in one
script, with the same answers as the separate check and rate limit."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from gateway.access.keys import KeyStore, UnknownTier
from gateway.access.memory import MemoryKeyStore
from gateway.limits.memory import MemoryRateLimiter
from gateway.limits.ratelimit import RateLimiter
from gateway.limits.tiers import DEFAULT_TIERS

NOON = 1_893_499_200_000  # 2030-01-01 12:00 UTC, in ms


@pytest.fixture
def stores(client: Redis) -> tuple[KeyStore, RateLimiter]:
    prefix = f"test:{uuid.uuid4().hex}:"
    return KeyStore(client, prefix=prefix), RateLimiter(client, prefix=prefix + "rl:")


async def test_a_live_key_is_counted_against_its_tier_in_the_same_call(
    stores: tuple[KeyStore, RateLimiter],
) -> None:
    keys, limiter = stores
    record, key = await keys.create("team-a", "client", "free")
    subject = f"key:{record.id}"
    answers = [
        await keys.verify_and_count(key, DEFAULT_TIERS, limiter, subject, now_ms=NOON)
        for _ in range(11)
    ]
    assert all(a is not None for a in answers)
    decisions = [a[2] for a in answers if a is not None]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert decisions[-1].limit == "minute"
    assert [d.remaining_day for d in decisions[:3]] == [99, 98, 97]
    first = answers[0]
    assert first is not None
    assert first[0].owner == "team-a" and first[0].role == "client" and first[0].tier == "free"
    assert first[1] == DEFAULT_TIERS["free"]
    # The same state the separate rate limit reads: it sees the burst spent.
    assert not (await limiter.hit(subject, 10, 100, now_ms=NOON)).allowed


async def test_a_wrong_secret_or_a_revoked_key_counts_nothing(
    stores: tuple[KeyStore, RateLimiter], client: Redis
) -> None:
    keys, limiter = stores
    record, key = await keys.create("team-b", "client", "free")
    subject = f"key:{record.id}"
    forged = key[:-6] + ("000000" if not key.endswith("000000") else "111111")
    for _ in range(20):
        assert await keys.verify_and_count(forged, DEFAULT_TIERS, limiter, subject) is None
    assert not await client.exists(limiter.key(subject, "gcra"), limiter.key(subject, "day"))
    assert await keys.verify_and_count(key, DEFAULT_TIERS, limiter, subject) is not None
    assert await keys.revoke(record.id)
    assert await keys.verify_and_count(key, DEFAULT_TIERS, limiter, subject) is None
    assert await keys.verify_and_count("sy_nonsense", DEFAULT_TIERS, limiter, subject) is None


async def test_a_keys_own_limits_override_its_tier(stores: tuple[KeyStore, RateLimiter]) -> None:
    keys, limiter = stores
    record, key = await keys.create("team-c", "client", "free", {"per_minute": 2, "per_day": None})
    subject = f"key:{record.id}"
    answers = [
        await keys.verify_and_count(key, DEFAULT_TIERS, limiter, subject, now_ms=NOON)
        for _ in range(3)
    ]
    decisions = [a[2] for a in answers if a is not None]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert all(d.per_minute == 2 and d.per_day is None for d in decisions)
    assert all(d.remaining_day is None for d in decisions)
    assert answers[0] is not None and answers[0][1].per_day is None


async def test_a_key_on_an_unknown_tier_is_reported_and_not_counted(
    stores: tuple[KeyStore, RateLimiter], client: Redis
) -> None:
    keys, limiter = stores
    record, key = await keys.create("team-d", "client", "platinum")
    subject = f"key:{record.id}"
    with pytest.raises(UnknownTier) as raised:
        await keys.verify_and_count(key, DEFAULT_TIERS, limiter, subject)
    assert raised.value.record.tier == "platinum"
    assert not await client.exists(limiter.key(subject, "gcra"))


async def test_the_in_process_store_gives_the_same_answers() -> None:
    keys, limiter = MemoryKeyStore(), MemoryRateLimiter()
    record, key = await keys.create("team-e", "client", "free", {"per_minute": 2})
    subject = f"key:{record.id}"
    answers = [
        await keys.verify_and_count(key, DEFAULT_TIERS, limiter, subject, now_ms=NOON)
        for _ in range(3)
    ]
    assert [a[2].allowed for a in answers if a is not None] == [True, True, False]
    assert await keys.verify_and_count(key[:-1] + "x", DEFAULT_TIERS, limiter, subject) is None


async def test_records_under_the_older_name_are_moved_and_keep_working(
    stores: tuple[KeyStore, RateLimiter], client: Redis
) -> None:
    keys, limiter = stores
    record, key = await keys.create("team-f", "client", "free")
    older = f"{keys.prefix}key:{record.id}"
    await client.rename(keys._record(record.id), older)  # as a key made before the move
    assert await keys.verify_and_count(key, DEFAULT_TIERS, limiter, f"key:{record.id}") is None
    assert await keys.move_older_records() == 1
    assert await keys.move_older_records() == 0
    checked = await keys.verify_and_count(key, DEFAULT_TIERS, limiter, f"key:{record.id}")
    assert checked is not None and checked[0].owner == "team-f"
    assert not await client.exists(older)
