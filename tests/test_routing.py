"""The routing table's rules, and the routing store's compare-and-set on a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from gateway.routing.store import RoutingStore, audit_entry
from gateway.routing.table import BUCKETS, Rollout, VersionRoute, bucket_of, choose

CALLERS = [f"key:{n:08x}" for n in range(20_000)]


def table(weight: float, **extra: object) -> Rollout:
    return Rollout.model_validate(
        {
            "model": "sentiment",
            "salt": "s-1",
            "versions": [
                {"version": "v1", "state": "stable"},
                {"version": "v2", "state": "canary", "weight": weight},
            ],
            **extra,
        }
    )


def shares(rollout: Rollout) -> Counter[str]:
    return Counter(choose(rollout, caller, None).version for caller in CALLERS)


def test_a_ten_percent_canary_gets_ten_percent_of_callers_within_one_point() -> None:
    counted = shares(table(10))
    assert 0.09 <= counted["v2"] / len(CALLERS) <= 0.11
    one = shares(table(1))
    assert 0.005 <= one["v2"] / len(CALLERS) <= 0.015


def test_buckets_are_spread_evenly_and_depend_on_the_salt() -> None:
    buckets = [bucket_of("s-1", caller) for caller in CALLERS]
    assert all(0 <= b < BUCKETS for b in buckets)
    tenths = Counter(b * 10 // BUCKETS for b in buckets)
    assert all(1_800 <= n <= 2_200 for n in tenths.values())
    moved = sum(bucket_of("s-2", c) != b for c, b in zip(CALLERS, buckets, strict=True))
    assert moved > 0.99 * len(CALLERS)


def test_assignment_is_the_same_in_another_process() -> None:
    # SHA-256, not Python's per-process salted hash(): a fixed caller has a fixed bucket.
    assert bucket_of("s-1", "key:00000000") == bucket_of("s-1", "key:00000000")
    expected = int.from_bytes(
        __import__("hashlib").sha256(b"s-1\x00key:00000000").digest()[:8], "big"
    )
    assert bucket_of("s-1", "key:00000000") == expected % BUCKETS


def test_raising_the_weight_only_moves_callers_from_stable_to_canary() -> None:
    previous = {c: choose(table(0), c, None).version for c in CALLERS}
    assert set(previous.values()) == {"v1"}
    for weight in (1, 5, 25, 50, 100):
        now = {c: choose(table(weight), c, None).version for c in CALLERS}
        assert all(now[c] == "v2" for c in CALLERS if previous[c] == "v2"), weight
        previous = now
    assert set(previous.values()) == {"v2"}


def test_a_pin_beats_the_allowlist_which_beats_the_weights() -> None:
    rollout = table(0, allowlist={"key:00000001": "v2"})
    listed = choose(rollout, "key:00000001", None)
    assert (listed.version, listed.reason) == ("v2", "allowlist")
    pinned = choose(rollout, "key:00000001", "v1")
    assert (pinned.version, pinned.reason) == ("v1", "pinned")
    other = choose(rollout, "key:00000002", None)
    assert (other.version, other.reason) == ("v1", "stable")
    canary = choose(table(100), "key:00000002", None)
    assert (canary.version, canary.reason) == ("v2", "canary")


@pytest.mark.parametrize(
    "versions, message",
    [
        ([{"version": "v1", "state": "canary", "weight": 10}], "exactly one version"),
        (
            [{"version": "v1", "state": "stable"}, {"version": "v1", "state": "canary"}],
            "listed twice",
        ),
        (
            [
                {"version": "v1", "state": "stable"},
                {"version": "v2", "state": "canary", "weight": 101},
            ],
            "less than or equal to 100",
        ),
        (
            [{"version": "v1", "state": "stable", "weight": 5}],
            "only canary versions carry a weight",
        ),
        (
            [
                {"version": "v1", "state": "stable"},
                {"version": "v2", "state": "canary", "weight": 60},
                {"version": "v3", "state": "canary", "weight": 50},
            ],
            "more than 100",
        ),
    ],
)
def test_inconsistent_tables_are_refused(versions: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Rollout.model_validate({"model": "m", "salt": "s", "versions": versions})


def test_a_deprecated_version_records_when() -> None:
    route = VersionRoute.model_validate({"version": "v1", "state": "deprecated"})
    assert route.deprecated_at is not None


@pytest.fixture
def store(client: Redis) -> RoutingStore:
    return RoutingStore(client, prefix=f"test:{uuid.uuid4().hex}:")


async def test_of_two_changes_on_one_revision_exactly_one_is_written(store: RoutingStore) -> None:
    first = table(10)
    assert await store.change(None, first, audit_entry("op", "start", "sentiment", "", None, first))
    stored = await store.get("sentiment")
    assert stored is not None and stored.revision == 1
    assert not await store.change(
        None, first, audit_entry("op", "start", "sentiment", "", None, first)
    )

    async def lower(weight: float) -> bool:
        after = table(weight, revision=stored.revision)
        entry = audit_entry("guardrail", "rollback", "sentiment", str(weight), stored, after)
        return await store.change(stored, after, entry)

    results = await asyncio.gather(*(lower(w) for w in (0, 0, 0, 0)))
    assert sorted(results) == [False, False, False, True]
    state = await store.load()
    assert state.rollouts["sentiment"].revision == 2
    assert state.revision == 2
    actions = [e.action for e in await store.audit("sentiment")]
    assert actions == ["rollback", "start"]
    newest = (await store.audit("sentiment"))[0]
    assert newest.before is not None and newest.before["versions"][1]["weight"] == 10
    assert newest.after is not None and newest.after["versions"][1]["weight"] == 0
