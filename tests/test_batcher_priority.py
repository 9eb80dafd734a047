"""The dynamic batcher's low-priority (batch job) items: they run only when no interactive
item waits, one job batch at a time, and keep the queue's guarantees (bound, deadline,
cancel). No gRPC, no model: a plain function that holds each batch until the test lets
it finish, so the test decides when workers free up."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.runtime.batcher import BatchPolicy, DynamicBatcher
from services.runtime.errors import DeadlineExpired, InvalidInput, Overloaded, Unavailable

LONG = 3600.0  # a queue delay no test waits out: batches form by size, flush or close
JOB = 100
"""Items from 100 up are a batch job's (submitted at low priority) in these tests."""

Batcher = DynamicBatcher[int, int]


class Held:
    """A batch function that doubles numbers. With ``hold``, each batch waits until the
    test sets the event handed out with it (``next_batch``). It notes every batch and the
    most job batches running at the same moment."""

    def __init__(self, hold: bool = True) -> None:
        self.hold = hold
        self.batches: list[list[int]] = []
        self.began: queue.Queue[tuple[list[int], threading.Event]] = queue.Queue()
        self._lock = threading.Lock()
        self._jobs_running = 0
        self.most_jobs_at_once = 0

    def __call__(self, items: Sequence[int]) -> list[int]:
        job = items[0] >= JOB
        with self._lock:
            self.batches.append(list(items))
            self._jobs_running += job
            self.most_jobs_at_once = max(self.most_jobs_at_once, self._jobs_running)
        try:
            if self.hold:
                go = threading.Event()
                self.began.put((list(items), go))
                assert go.wait(timeout=30), "the test never let this batch finish"
            return [i * 2 for i in items]
        finally:
            with self._lock:
                self._jobs_running -= job


async def next_batch(run: Held) -> tuple[list[int], threading.Event]:
    """The next batch to begin running, and the event that lets it finish."""
    return await asyncio.to_thread(run.began.get, timeout=30)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the event loop run until ``condition`` holds."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


async def settle() -> None:
    """Let the event loop run a while, for a test that checks something did not happen."""
    for _ in range(200):
        await asyncio.sleep(0)


@pytest.fixture
def workers() -> Iterator[list[ThreadPoolExecutor]]:
    pools = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"w{i}") for i in range(3)]
    yield pools
    for pool in pools:
        pool.shutdown(wait=False, cancel_futures=True)


def batcher(
    run: Held,
    workers: list[ThreadPoolExecutor],
    lanes: int = 1,
    size: int = 4,
    delay: float = 0.0,
    queue_size: int = 8,
    idle_s: float = 0.0,
    low_batch: int = 8,
) -> Batcher:
    """A batcher whose job batches start as soon as the workers are idle (unless
    ``idle_s``), so that the tests decide every moment."""
    policy = BatchPolicy(size, delay, queue_size, idle_s, low_batch)
    b = DynamicBatcher(run, policy, workers[:lanes])
    b.start()
    return b


def job(b: Batcher, *items: int, deadline: float | None = None) -> asyncio.Future[list[int]]:
    return asyncio.ensure_future(b.submit_many(items, deadline, low_priority=True))


def call(b: Batcher, *items: int) -> asyncio.Future[list[int]]:
    return asyncio.ensure_future(b.submit_many(items))


async def test_with_both_waiting_the_next_batch_takes_only_the_interactive_items(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held()
    b = batcher(run, workers, size=4)
    first = call(b, 1)
    _, go_first = await next_batch(run)
    # Queued first, and the batch has room for them: still they wait.
    jobs = job(b, 101, 102)
    await until(lambda: b.low_priority_depth == 2, "the job's items queued")
    interactive = call(b, 2, 3)
    await until(lambda: b.depth == 2, "the interactive items queued")
    go_first.set()
    batch, go = await next_batch(run)
    assert batch == [2, 3]
    assert b.low_priority_depth == 2
    go.set()
    assert await interactive == [4, 6]
    batch, go = await next_batch(run)
    assert batch == [101, 102]  # nothing interactive waits any more: the job's turn
    go.set()
    assert await first == [2]
    assert await jobs == [202, 204]
    await b.close()


async def test_a_job_runs_when_nothing_interactive_waits_a_batch_at_a_time(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held(hold=False)
    b = batcher(run, workers, size=4, queue_size=8)
    assert await b.submit(7, low_priority=True) == 14
    assert await job(b, *range(101, 107)) == [i * 2 for i in range(101, 107)]
    assert run.batches == [[7], [101, 102, 103, 104], [105, 106]]
    await b.close()


async def test_an_interactive_batch_is_handed_over_behind_a_job_batch_but_no_job_batch_is(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held()
    b = batcher(run, workers, size=2)
    first_job = job(b, 101, 102)
    _, go_first_job = await next_batch(run)
    second_job = job(b, 103, 104)  # a full batch, yet not handed over behind the first
    await until(lambda: b.low_priority_depth == 2, "the second job batch queued")
    await settle()
    assert (b.in_flight, b.low_priority_depth) == (1, 2)
    interactive = call(b, 1, 2)  # a full batch: handed over at once, to run next
    await until(lambda: b.in_flight == 2, "the interactive batch handed over")
    assert b.depth == 0
    go_first_job.set()
    batch, go = await next_batch(run)
    assert batch == [1, 2]
    go.set()
    batch, go = await next_batch(run)
    assert batch == [103, 104]
    go.set()
    assert await first_job == [202, 204]
    assert await interactive == [2, 4]
    assert await second_job == [206, 208]
    await b.close()


async def test_one_job_batch_in_flight_across_workers_while_interactive_ones_use_the_rest(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held()
    b = batcher(run, workers, lanes=3, size=2, queue_size=8)
    jobs = job(b, *range(101, 107))
    batch, go_job = await next_batch(run)
    assert batch == [101, 102]
    await settle()
    assert (b.in_flight, b.low_priority_depth) == (1, 4)  # two workers idle, and unused
    interactive = call(b, 1, 2)  # an idle worker takes it while the job batch runs
    batch, go = await next_batch(run)
    assert batch == [1, 2]
    go.set()
    assert await interactive == [2, 4]
    for expected in ([103, 104], [105, 106]):
        await settle()
        assert b.in_flight == 1  # still only the one job batch
        go_job.set()
        batch, go_job = await next_batch(run)
        assert batch == expected
    go_job.set()
    assert await jobs == [i * 2 for i in range(101, 107)]
    assert run.most_jobs_at_once == 1
    await b.close()


async def test_under_mixed_load_no_batch_mixes_priorities_and_job_batches_never_overlap(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held(hold=False)
    b = batcher(run, workers, lanes=3, size=4, queue_size=64)
    calls = [call(b, i) for i in range(1, 41)]
    jobs = [job(b, JOB + i, JOB + i + 1) for i in range(0, 60, 2)]
    outcomes = await asyncio.gather(*calls, *jobs)
    assert [o[0] for o in outcomes[:40]] == [i * 2 for i in range(1, 41)]
    assert len(outcomes) == 70
    for batch in run.batches:
        assert len({i >= JOB for i in batch}) == 1, batch
    assert run.most_jobs_at_once == 1
    await b.close()


async def test_a_job_item_whose_deadline_passed_is_dropped_before_it_runs(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held(hold=False)
    b = batcher(run, workers, size=2, delay=LONG, queue_size=4)
    expired = job(b, 101, deadline=time.monotonic() - 1)
    await until(lambda: b.low_priority_depth == 1, "the expired item queued")
    fresh = job(b, 102, deadline=time.monotonic() + 60)
    with pytest.raises(DeadlineExpired):
        await expired
    assert await fresh == [204]
    assert run.batches == [[102]]
    await b.close()


async def test_a_cancelled_job_call_gives_its_slots_back(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held(hold=False)
    b = batcher(run, workers, size=4, delay=LONG, queue_size=4)
    waiting = job(b, 101, 102, 103)
    await until(lambda: b.low_priority_depth == 3, "the job's items queued")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert b.low_priority_depth == 0
    assert await job(b, 105, 106, 107, 108) == [210, 212, 214, 216]
    assert run.batches == [[105, 106, 107, 108]]  # the cancelled items never ran
    await b.close()


async def test_job_items_have_a_queue_bound_of_their_own(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held(hold=False)
    b = batcher(run, workers, size=4, delay=LONG, queue_size=4)
    waiting = job(b, 101, 102, 103)
    await until(lambda: b.low_priority_depth == 3, "the job's items queued")
    await settle()  # the job's batch waits to fill (a long queue delay)
    with pytest.raises(Overloaded, match="low-priority queue is full") as refused:
        await b.submit_many([104, 105], low_priority=True)
    assert refused.value.retry_after_s > 0
    with pytest.raises(InvalidInput, match="max_queue_size"):
        await b.submit_many([104, 105, 106, 107, 108], low_priority=True)
    assert b.low_priority_depth == 3  # the refused calls took no slot
    # A job filling its queue takes no interactive caller's slot, and they run first,
    # though the job's items came first and were waiting for a batch to fill.
    assert await b.submit_many([1, 2, 3, 4]) == [2, 4, 6, 8]
    assert await b.submit(104, low_priority=True) == 208  # one more fits, and fills the batch
    assert await waiting == [202, 204, 206]
    assert run.batches == [[1, 2, 3, 4], [101, 102, 103, 104]]
    await b.close()


async def test_close_runs_accepted_job_items_and_reject_fails_waiting_ones(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held(hold=False)
    b = batcher(run, workers, size=4, delay=LONG, queue_size=8)
    accepted = job(b, 101, 102)
    await until(lambda: b.low_priority_depth == 2, "the job's items queued")
    await b.close()
    assert await accepted == [202, 204]
    with pytest.raises(Unavailable):
        await b.submit(103, low_priority=True)

    other = batcher(Held(hold=False), workers, size=4, delay=LONG, queue_size=8)
    waiting = [job(other, 101, 102), call(other, 1)]
    await until(lambda: (other.depth, other.low_priority_depth) == (1, 2), "items queued")
    assert other.reject_queued(Unavailable("stopping")) == 3
    for refused in waiting:
        with pytest.raises(Unavailable):
            await refused
    assert (other.depth, other.low_priority_depth) == (0, 0)
    await other.close()


async def test_a_job_batch_waits_until_the_workers_have_been_idle_a_while(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held()
    b = batcher(run, workers, size=4, idle_s=LONG)
    interactive = call(b, 1)
    batch, go = await next_batch(run)
    go.set()
    assert await interactive == [2]
    jobs = job(b, 101, 102)
    await settle()
    assert (b.in_flight, b.low_priority_depth) == (0, 2)  # idle, but not long enough
    closing = asyncio.ensure_future(b.close())  # runs what was accepted, at once
    batch, go = await next_batch(run)
    assert batch == [101, 102]
    go.set()
    assert await jobs == [202, 204]
    await closing


async def test_a_job_batch_is_smaller_than_an_interactive_one(
    workers: list[ThreadPoolExecutor],
) -> None:
    run = Held(hold=False)
    b = batcher(run, workers, size=4, low_batch=2)
    assert await job(b, 101, 102, 103, 104, 105) == [202, 204, 206, 208, 210]
    assert await call(b, 1, 2, 3, 4) == [2, 4, 6, 8]
    assert run.batches == [[101, 102], [103, 104], [105], [1, 2, 3, 4]]
    await b.close()
