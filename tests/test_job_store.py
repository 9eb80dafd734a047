"""The batch jobs' store, in Redis and in this process alike: one replica at a time holds
a batch's lease, a replica that lost it can write nothing more, a cancel is never
overwritten by the runner's progress, and an expired batch leaves the runnable set."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from gateway.jobs.interfaces import CANCEL_ASKED, LOST, SAVED, JobStorage
from gateway.jobs.memory import MemoryJobStore
from gateway.jobs.records import BatchRecord, JobCaller, new_batch_id, now_s
from gateway.jobs.store import PREFIX, RedisJobStore
from tests.batch_support import redis_server

pytestmark = pytest.mark.timeout(60)

__all__ = ["redis_server"]  # the module's own Redis, used by name


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest, client: redis.Redis) -> AsyncIterator[JobStorage]:
    if request.param == "memory":
        yield MemoryJobStore()
        return
    await forget_every_job(client)
    yield RedisJobStore(client)


async def forget_every_job(client: redis.Redis) -> None:
    """This test module's batches only: no other module's are runnable."""
    await client.delete(*[k async for k in client.scan_iter(f"{PREFIX}*")] or ["-"])


def batch(owner: str = "key:one") -> BatchRecord:
    caller = JobCaller(owner, "one", "pro", ["client"], {})
    now = now_s()
    return BatchRecord(
        new_batch_id(), owner, "/v1/classify", "file-x", "24h", now, now + 60, caller
    )


async def test_one_worker_holds_a_batch_until_its_lease_runs_out(store: JobStorage) -> None:
    made = batch()
    assert await store.create_batch(made, None)
    assert await store.claim("a", 30) == made.id
    assert await store.claim("b", 30) is None  # a holds it
    assert await store.renew(made.id, "a", 30) and not await store.renew(made.id, "b", 30)
    await store.release(made.id, "a")
    assert await store.claim("b", 0.001) == made.id  # given back: claimed at once
    assert await store.claim("a", 30) in (None, made.id)  # b's lease is a millisecond


async def test_a_worker_that_lost_its_lease_writes_nothing(store: JobStorage) -> None:
    made = batch()
    await store.create_batch(made, None)
    assert await store.claim("a", 30) == made.id
    made.completed = 5
    assert await store.save(made, "b") == LOST
    assert await store.save(made, "a", "in_progress") == SAVED
    kept = await store.get_batch(made.id)
    assert kept is not None and (kept.status, kept.completed) == ("in_progress", 5)


async def test_a_cancel_is_kept_over_the_runners_progress(store: JobStorage) -> None:
    made = batch()
    await store.create_batch(made, None)
    await store.claim("a", 30)
    assert await store.cancel(made.id)
    assert await store.save(made, "a", "in_progress") == CANCEL_ASKED
    kept = await store.get_batch(made.id)
    assert kept is not None and kept.status == "cancelling" and kept.cancel
    assert await store.save(made, "a", "cancelled", final=True) == CANCEL_ASKED
    ended = await store.get_batch(made.id)
    assert ended is not None and ended.status == "cancelled"
    assert await store.claim("b", 30) is None  # ended: not runnable
    assert not await store.cancel("batch_unknown")


async def test_open_batches_count_until_they_end(store: JobStorage) -> None:
    first, second = batch("key:two"), batch("key:two")
    assert await store.create_batch(first, 1)
    assert not await store.create_batch(second, 1)
    await store.claim("a", 30)
    await store.save(first, "a", "completed", final=True)
    assert await store.create_batch(second, 1)


async def test_an_expired_batch_leaves_the_runnable_set(client: redis.Redis) -> None:
    await forget_every_job(client)
    store = RedisJobStore(client)
    made = batch()
    await store.create_batch(made, None)
    await client.delete(f"{PREFIX}batch:{made.id}")  # as its time to live would
    assert await store.claim("a", 30) is None
    assert await client.zscore(f"{PREFIX}runnable", made.id) is None
