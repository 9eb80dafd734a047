"""Dynamic batching: gather single items into batches run by one worker off the event loop.

The batcher knows nothing of gRPC or of any model: it is handed a function that maps a
list of inputs to a list of outputs and runs it on an executor. The queue is bounded
(``Overloaded`` when full), items whose deadline passed are dropped before they run
(``DeadlineExpired``), and a cancelled item gives its slot back at once.

Batches go to one or more workers (``lanes``, one executor each). When every worker is
idle, items wait until the batch is full or the oldest has waited ``max_queue_delay_s``
(0, as shipped: a lone item runs at once); a worker that is idle while others are busy
takes what waits at once. When every worker is busy, the items arriving meanwhile
gather, and the next batch is handed to the worker expected to free up first just before
it does (``HANDOFF_LEAD``), or at once when the batch is full: no worker idles between
batches waiting for results to travel back and the next batch to travel out, and the
next batch is formed as late as it can be, so it is as large as the load allows.

Low-priority items (a batch job's) only use what interactive callers leave idle: a batch
is taken from the interactive items whenever any wait, from the low-priority ones only when
none does as it is formed. At most one low-priority batch is in flight, and only on an idle
worker, never handed over behind a running batch: an interactive item arriving while a job
runs waits for one job batch at most.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, Protocol, TypeVar

from services.runtime import tracing
from services.runtime.batch_queue import BatchPolicy, Pending, WaitingItems
from services.runtime.batch_run import WORKER_STOPPED, run_and_answer
from services.runtime.errors import Unavailable
from services.runtime.lanes import PIPELINED, Flight, Lane, idle, next_free

# BatchPolicy is named here too: whoever makes a batcher gives it one.
__all__ = ["HANDOFF_LEAD", "MIN_HANDOFF_LEAD_S", "BatchObserver", "BatchPolicy", "DynamicBatcher"]

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)

HANDOFF_LEAD = 0.15
"""The next batch is handed over when the running one is expected to end within this
share of its expected duration (at least ``MIN_HANDOFF_LEAD_S``)."""
MIN_HANDOFF_LEAD_S = 0.002


class BatchObserver(Protocol):
    """Receives one call per batch run, for metrics."""

    def batch_ran(self, size: int, seconds: float, low_priority: bool) -> None: ...

    def items_dropped(self, reason: str, count: int) -> None: ...


class DynamicBatcher(Generic[In, Out]):
    """Runs ``run_batch`` on batches of submitted items, one batch at a time per worker
    (``executor``: one worker, or a list of them, each an executor running one batch at a
    time)."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[In]], Sequence[Out]],
        policy: BatchPolicy,
        executor: Executor | Sequence[Executor],
        observer: BatchObserver | None = None,
        on_broken: Callable[[], None] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._on_broken = on_broken
        self.policy = policy
        executors = [executor] if isinstance(executor, Executor) else list(executor)
        if not executors:
            raise ValueError("a batcher needs at least one executor")
        self._lanes = [Lane(e) for e in executors]
        # Handing the next batch over early saves a round trip per batch, which matters
        # for short forward passes; a batch of one (a generation, seconds long) waits in
        # the queue instead, where its deadline and a cancel still reach it.
        self._depth = PIPELINED if policy.max_batch_size > 1 else 1
        self._observer = observer
        self._waiting = WaitingItems[In, Out](policy)
        self._low_in_flight = False
        self._wake = asyncio.Event()
        self._wake_from = 1
        """Interactive items waiting from which an arrival wakes the gathering task: 1
        (any arrival) unless it waits for a handover, which only a full batch hastens."""
        self._flushing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._recent_batch_s = 0.0
        self._running: set[asyncio.Task[None]] = set()
        self._idle_since = 0.0
        """When the last running batch ended (``time.monotonic()``)."""
        self._slot_freed = asyncio.Event()
        self.broken = False
        """True once batches can no longer run (the model worker process died)."""

    @property
    def depth(self) -> int:
        """Interactive items accepted and waiting to run."""
        return self._waiting.interactive

    @property
    def low_priority_depth(self) -> int:
        """Low-priority (batch job) items accepted and waiting to run."""
        return self._waiting.low

    @property
    def in_flight(self) -> int:
        """Batches handed to the executor and not finished yet."""
        return len(self._running)

    def start(self) -> None:
        """Start gathering; call from the event loop that will submit."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._gather_forever())

    async def submit(
        self, item: In, deadline: float | None = None, *, low_priority: bool = False
    ) -> Out:
        """Run one item; ``deadline`` is a ``time.monotonic()`` instant or None;
        ``low_priority`` for a batch job's item, run only when no interactive one waits."""
        (result,) = await self.submit_many((item,), deadline, low_priority=low_priority)
        return result

    async def submit_many(
        self, items: Sequence[In], deadline: float | None = None, *, low_priority: bool = False
    ) -> list[Out]:
        """Run several items, admitted all together or not at all; outputs keep their order."""
        if self._closed:
            raise Unavailable("the service is shutting down; retry on another replica")
        if self.broken:
            raise Unavailable(WORKER_STOPPED)
        self._waiting.admit(len(items), low_priority, self._retry_hint_s)
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        traced = tracing.item_trace()
        pending = [
            Pending[In, Out](item, loop.create_future(), deadline, now, low_priority, trace=traced)
            for item in items
        ]
        self._waiting.add(pending)
        if low_priority or self._waiting.interactive >= self._wake_from:
            self._wake.set()
        try:
            if len(pending) == 1:  # the usual call: no gathering future to build
                return [await pending[0].future]
            return list(await asyncio.gather(*(p.future for p in pending)))
        except BaseException:
            # A cancelled or failed caller gives its remaining slots back at once.
            for p in pending:
                self._waiting.forget(p)
                if p.future.done() and not p.future.cancelled():
                    p.future.exception()  # mark as retrieved: one error answers the call
                p.future.cancel()
            raise

    def flush(self) -> None:
        """Stop waiting for batches to fill: run what is queued now (used while draining)."""
        self._flushing = True
        self._wake.set()

    async def close(self) -> None:
        """Refuse new items, run every accepted one, then stop."""
        self._closed = True
        self.flush()
        if self._task is not None:
            await self._task

    def _retry_hint_s(self) -> float:
        # Roughly how long until a batch's worth of slots frees up.
        return max(self._recent_batch_s, self.policy.max_queue_delay_s, 0.05)

    def reject_queued(self, error: Exception) -> int:
        """Fail every item still waiting (not yet running) with ``error``; returns how many."""
        return self._waiting.reject_all(error)

    async def _gather_forever(self) -> None:
        try:
            await self._gather()
        except Exception:
            # Nothing more would ever run: fail what waits rather than leave it hanging.
            log.exception("the batcher stopped")
            self.broken = True
            self.reject_queued(Unavailable("the model is unavailable; retry on another replica"))

    async def _gather(self) -> None:
        try:
            while True:
                low = self._waiting.interactive == 0  # the batch would be a job's
                lane = idle(self._lanes)
                # A job's batch runs alone (one in flight) and only on an idle worker.
                if low and (self._waiting.low == 0 or self._low_in_flight or lane is None):
                    if self._waiting.low == 0:
                        self._waiting.drop_leftovers()  # only cancelled leftovers remain
                        if self._closed:
                            return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if low and not await self._idle_long_enough():
                    continue  # an interactive item came, or a worker is busy again
                if lane is not None:
                    if not self._running:  # every worker idle: the batch may wait to fill
                        await self._wait_for_batch(low)
                    if low and self._waiting.interactive:
                        continue  # an interactive item came meanwhile: it goes first
                else:
                    lane = next_free(self._lanes, self._recent_batch_s, self._depth)
                    if lane is None:  # every worker holds a running and a next batch
                        self._slot_freed.clear()
                        await self._slot_freed.wait()
                        continue
                    if not await self._wait_for_handoff(lane):
                        continue  # a worker freed up meanwhile: choose again
                batch, expired = self._waiting.take(low, time.monotonic())
                if expired and self._observer is not None:
                    self._observer.items_dropped("deadline", expired)
                if batch:
                    self._launch(batch, lane, low)
        finally:
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)

    async def _idle_long_enough(self) -> bool:
        """Wait until every worker has been idle ``low_priority_idle_s`` (True at once on
        a flush); False when an interactive item arrived, or, once something changed (a
        batch ended, an item arrived), when a batch was running."""
        if self._flushing:
            return True
        if self._running:
            self._wake.clear()
            await self._wake.wait()
            return False
        while not self._waiting.interactive:
            remaining = self._idle_since + self.policy.low_priority_idle_s - time.monotonic()
            if remaining <= 0 or self._flushing:
                return True
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return True
        return False

    def _launch(self, batch: list[Pending[In, Out]], lane: Lane, low: bool) -> None:
        flight = lane.hand(time.perf_counter())
        task = asyncio.get_running_loop().create_task(self._run(batch, lane, flight, low))
        self._running.add(task)
        self._low_in_flight |= low

        def done(finished: asyncio.Task[None]) -> None:
            self._running.discard(finished)
            if not self._running:
                self._idle_since = time.monotonic()
            if low:
                self._low_in_flight = False
            self._slot_freed.set()
            self._wake.set()

        task.add_done_callback(done)

    async def _wait_for_handoff(self, lane: Lane) -> bool:
        """Every worker busy: wait until the next batch is full, ``lane`` is about to free
        up, or a flush (True: hand the batch to ``lane`` now); False when the state
        changed (a worker freed up, or nothing waits any more)."""
        # Before any batch has ended there is no estimate: wait for a worker to free up.
        batch_s = self._recent_batch_s
        expected_end = lane.free_at(batch_s) if batch_s else math.inf
        lead = max(MIN_HANDOFF_LEAD_S, HANDOFF_LEAD * batch_s)
        while self._waiting.interactive < self.policy.max_batch_size and not self._flushing:
            if self._waiting.interactive == 0 or idle(self._lanes) is not None:
                return False
            remaining = expected_end - lead - time.perf_counter()
            if remaining <= 0:
                return True
            self._wake.clear()
            # Arrivals short of a full batch change nothing here: waking for each one
            # cost the event loop a step and a timer per call.
            self._wake_from = self.policy.max_batch_size
            try:
                async with asyncio.timeout(None if math.isinf(remaining) else remaining):
                    await self._wake.wait()
            except TimeoutError:
                return True
            finally:
                self._wake_from = 1
        return self._waiting.interactive > 0

    async def _wait_for_batch(self, low: bool) -> None:
        """Wait until a batch of that priority is full, its oldest item has waited long
        enough, or a flush; a low-priority batch also stops waiting for an interactive item."""
        oldest = self._waiting.oldest(low)
        if oldest is None:
            return
        ready_at = oldest + self.policy.max_queue_delay_s
        while self._waiting.count(low) < self.policy.max_batch_size and not self._flushing:
            if low and self._waiting.interactive:
                return
            remaining = ready_at - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _run(
        self, batch: list[Pending[In, Out]], lane: Lane, flight: Flight, low: bool
    ) -> None:
        try:
            died = await run_and_answer(lane.executor, self._run_batch, batch)
        finally:
            elapsed = lane.finish(flight, time.perf_counter())
            self._recent_batch_s = elapsed
            if self._observer is not None:
                self._observer.batch_ran(len(batch), elapsed, low)
        if died is not None and not self.broken:  # the batch handed over next dies too
            log.error("the model worker died running a batch of %d", len(batch), exc_info=died)
            self.broken = True
            self.reject_queued(Unavailable(WORKER_STOPPED))
            if self._on_broken is not None:
                self._on_broken()
