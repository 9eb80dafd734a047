"""The dynamic batcher alone: no gRPC, no model, a plain function as the batch."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from services.runtime.batcher import BatchPolicy, DynamicBatcher
from services.runtime.errors import DeadlineExpired, InvalidInput, Overloaded, Unavailable

LONG = 3600.0  # a queue delay no test waits out: batches form by size, flush or close


class Recorder:
    """A batch function that doubles numbers and remembers each batch and its thread."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.gate = gate
        self.started = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        return [i * 2 for i in items]


@pytest.fixture
def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-model")


def batcher(
    run: Recorder, executor: ThreadPoolExecutor, size: int = 4, delay: float = LONG, queue: int = 8
) -> DynamicBatcher[int, int]:
    b = DynamicBatcher(run, BatchPolicy(size, delay, queue), executor)
    b.start()
    return b


async def wait_depth(b: DynamicBatcher[int, int], depth: int) -> None:
    """Let the submitting tasks run until the queue holds ``depth`` items."""
    for _ in range(1000):
        if b.depth == depth:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"queue depth stayed {b.depth}, wanted {depth}")


async def test_items_submitted_together_run_as_one_batch_off_the_loop(
    executor: ThreadPoolExecutor,
) -> None:
    run = Recorder()
    b = batcher(run, executor, size=4)
    results = await asyncio.gather(*(b.submit(i) for i in range(4)))
    assert results == [0, 2, 4, 6]
    assert run.batches == [[0, 1, 2, 3]]
    assert run.threads == {"test-model_0"}
    await b.close()


async def test_a_lone_item_runs_once_the_queue_delay_passes(executor: ThreadPoolExecutor) -> None:
    run = Recorder()
    b = batcher(run, executor, size=64, delay=0.001, queue=64)
    assert await b.submit(21) == 42
    assert run.batches == [[21]]
    await b.close()


async def test_a_full_queue_refuses_at_once_with_a_retry_hint(executor: ThreadPoolExecutor) -> None:
    run = Recorder()
    b = batcher(run, executor, size=4, queue=4)
    waiting = asyncio.ensure_future(b.submit_many([1, 2, 3]))
    await wait_depth(b, 3)
    with pytest.raises(Overloaded) as refused:
        await b.submit_many([4, 5])
    assert refused.value.retry_after_s > 0
    assert b.depth == 3  # the refused call took no slot
    assert await b.submit(4) == 8  # one more fits, and fills the batch
    assert await waiting == [2, 4, 6]
    assert run.batches == [[1, 2, 3, 4]]
    await b.close()


async def test_a_cancelled_call_gives_its_slots_back(executor: ThreadPoolExecutor) -> None:
    run = Recorder()
    b = batcher(run, executor, size=4, queue=4)
    waiting = asyncio.ensure_future(b.submit_many([1, 2, 3]))
    await wait_depth(b, 3)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert b.depth == 0
    assert await asyncio.gather(*(b.submit(i) for i in (5, 6, 7, 8))) == [10, 12, 14, 16]
    assert run.batches == [[5, 6, 7, 8]]  # the cancelled items never ran
    await b.close()


async def test_an_item_whose_deadline_passed_is_dropped_before_it_runs(
    executor: ThreadPoolExecutor,
) -> None:
    run = Recorder()
    b = batcher(run, executor, size=2, queue=4)
    expired = asyncio.ensure_future(b.submit(1, deadline=time.monotonic() - 1))
    await wait_depth(b, 1)
    fresh = asyncio.ensure_future(b.submit(2, deadline=time.monotonic() + 60))
    with pytest.raises(DeadlineExpired):
        await expired
    b.flush()
    assert await fresh == 4
    assert run.batches == [[2]]
    await b.close()


async def test_a_failing_batch_fails_each_of_its_calls(executor: ThreadPoolExecutor) -> None:
    def broken(items: Sequence[int]) -> list[int]:
        raise ValueError("model exploded")

    b = DynamicBatcher(broken, BatchPolicy(2, LONG, 4), executor)
    b.start()
    outcomes = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes)
    await b.close()


async def test_new_items_queue_while_a_batch_runs_and_form_the_next_batch(
    executor: ThreadPoolExecutor,
) -> None:
    gate = threading.Event()
    run = Recorder(gate)
    b = batcher(run, executor, size=2, queue=8)
    first = asyncio.gather(b.submit(1), b.submit(2))
    assert await asyncio.to_thread(run.started.wait, 30)
    second = asyncio.gather(b.submit(3), b.submit(4))
    await wait_depth(b, 2)
    gate.set()
    assert list(await first) == [2, 4]
    assert list(await second) == [6, 8]
    assert run.batches == [[1, 2], [3, 4]]
    await b.close()


async def test_a_full_next_batch_is_handed_over_while_the_current_one_runs(
    executor: ThreadPoolExecutor,
) -> None:
    gate = threading.Event()
    run = Recorder(gate)
    b = batcher(run, executor, size=2, queue=8)
    first = asyncio.gather(b.submit(1), b.submit(2))
    assert await asyncio.to_thread(run.started.wait, 30)
    second = asyncio.gather(b.submit(3), b.submit(4))
    for _ in range(1000):  # taken at once, to wait in the executor behind the first
        if b.in_flight == 2:
            break
        await asyncio.sleep(0)
    assert (b.in_flight, b.depth) == (2, 0)
    third = asyncio.ensure_future(b.submit(5))
    await wait_depth(b, 1)  # two batches in flight already: this one waits its turn
    gate.set()
    assert list(await first) == [2, 4]
    assert list(await second) == [6, 8]
    await b.close()  # a lone item waits for company (a long queue delay) until the close
    assert await third == 10
    assert run.batches == [[1, 2], [3, 4], [5]]


async def test_with_no_queue_delay_a_lone_item_runs_at_once_and_others_gather_behind_it(
    executor: ThreadPoolExecutor,
) -> None:
    gate = threading.Event()
    run = Recorder(gate)
    b = batcher(run, executor, size=8, delay=0.0, queue=16)
    lone = asyncio.ensure_future(b.submit(1))
    assert await asyncio.to_thread(run.started.wait, 30)  # ran without waiting for company
    later = asyncio.gather(*(b.submit(i) for i in (2, 3, 4)))
    gate.set()
    assert await lone == 2
    assert list(await later) == [4, 6, 8]
    assert run.batches[0] == [1]
    assert sorted(i for batch in run.batches[1:] for i in batch) == [2, 3, 4]
    await b.close()


async def test_with_two_workers_two_batches_run_at_once() -> None:
    together = threading.Barrier(2, timeout=30)  # broken unless both batches run at once

    def meet(items: Sequence[int]) -> list[int]:
        together.wait()
        return [i * 2 for i in items]

    workers = [ThreadPoolExecutor(max_workers=1) for _ in range(2)]
    b = DynamicBatcher(meet, BatchPolicy(2, 0.0, 8), workers)
    b.start()
    first = asyncio.gather(b.submit(1), b.submit(2))
    for _ in range(1000):
        if b.in_flight == 1:
            break
        await asyncio.sleep(0)
    second = asyncio.gather(b.submit(3), b.submit(4))  # the idle worker takes these
    assert list(await first) == [2, 4]
    assert list(await second) == [6, 8]
    await b.close()
    for worker in workers:
        worker.shutdown()


async def test_close_runs_what_was_accepted_and_refuses_the_rest(
    executor: ThreadPoolExecutor,
) -> None:
    run = Recorder()
    b = batcher(run, executor, size=8, queue=8)
    accepted = asyncio.gather(*(b.submit(i) for i in range(3)))
    await wait_depth(b, 3)
    await b.close()
    assert await accepted == [0, 2, 4]
    with pytest.raises(Unavailable):
        await b.submit(9)


def test_a_policy_must_make_sense() -> None:
    with pytest.raises(ValueError, match="max_queue_size"):
        BatchPolicy(max_batch_size=8, max_queue_delay_s=0, max_queue_size=4)
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchPolicy(max_batch_size=0, max_queue_delay_s=0, max_queue_size=4)


async def test_a_request_larger_than_the_queue_is_invalid_not_overload(
    executor: ThreadPoolExecutor,
) -> None:
    b = batcher(Recorder(), executor, size=4, queue=4)
    with pytest.raises(InvalidInput, match="max_queue_size"):
        await b.submit_many([1, 2, 3, 4, 5])
    await b.close()


async def test_queued_items_can_be_refused_with_a_retryable_error(
    executor: ThreadPoolExecutor,
) -> None:
    b = batcher(Recorder(), executor, size=4, queue=4)
    waiting = asyncio.ensure_future(b.submit_many([1, 2]))
    await wait_depth(b, 2)
    assert b.reject_queued(Unavailable("stopping")) == 2
    with pytest.raises(Unavailable):
        await waiting
    assert b.depth == 0
    await b.close()


async def test_a_dead_worker_breaks_the_batcher_and_says_so() -> None:
    def crash(items: Sequence[int]) -> list[int]:
        raise BrokenProcessPool("worker died")

    broken: list[bool] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        b = DynamicBatcher(
            crash, BatchPolicy(2, LONG, 4), pool, on_broken=lambda: broken.append(True)
        )
        b.start()
        outcomes = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
        assert all(isinstance(o, Unavailable) for o in outcomes)
        assert broken == [True] and b.broken
        with pytest.raises(Unavailable, match="worker stopped"):
            await b.submit(3)
        await b.close()
