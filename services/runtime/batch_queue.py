"""What waits in a dynamic batcher's queue, and the policy that bounds it: how many items
one batch takes, how long the oldest may wait for a batch to fill, and how many may wait
at all. ``services.runtime.batcher`` gathers and runs the batches.

Items come at two priorities. Interactive items are the callers waiting on an answer;
low-priority items are a batch job's, which only use capacity interactive callers leave
idle. Each priority waits in a queue of its own, so a batch is taken from one of them:
the batcher decides which.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.runtime.errors import DeadlineExpired, InvalidInput, Overloaded
from services.runtime.tracing import ItemTrace

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class BatchPolicy:
    """How a batcher gathers work."""

    max_batch_size: int
    max_queue_delay_s: float
    max_queue_size: int
    low_priority_idle_s: float = 0.02
    """A batch job's batch starts only once every worker has been idle this long: an
    interactive caller that sends its next call right after an answer (a gap of a few
    milliseconds) never finds a job's batch in the way."""
    low_priority_max_batch: int = 8
    """Most items in a batch job's batch: an interactive call that arrives while one runs
    waits for this few at most."""

    def __post_init__(self) -> None:
        if self.low_priority_idle_s < 0:
            raise ValueError("low_priority_idle_s must not be negative")
        if self.low_priority_max_batch < 1:
            raise ValueError("low_priority_max_batch must be at least 1")
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if self.max_queue_delay_s < 0:
            raise ValueError("max_queue_delay_s must not be negative")
        if self.max_queue_size < self.max_batch_size:
            raise ValueError("max_queue_size must be at least max_batch_size")


class PendingState(enum.Enum):
    """Waiting in the queue (counted in its depth), taken into a batch, or gone (its
    caller gave up, or it was failed) and only left for the gatherer to drop."""

    QUEUED = enum.auto()
    TAKEN = enum.auto()
    GONE = enum.auto()


@dataclass(eq=False)
class Pending(Generic[In, Out]):
    """One submitted item: its caller's future, its deadline (``time.monotonic()``, or
    None), when it was queued and whether it is a batch job's (low priority)."""

    item: In
    future: asyncio.Future[Out]
    deadline: float | None
    enqueued_at: float
    low_priority: bool = False
    state: PendingState = field(default=PendingState.QUEUED)
    trace: ItemTrace | None = None
    """Where its spans go, while traces are on."""


class WaitingItems(Generic[In, Out]):
    """The items accepted and not yet taken into a batch, one queue per priority.

    Each priority is bounded by ``max_queue_size`` on its own, rather than sharing one
    bound: a job sends as fast as it is let, so in a shared queue it would keep the queue
    full and interactive callers would be refused because of it. Bounded apart, a job
    never takes an interactive caller's slot, and a job that outruns the service is still
    refused (``Overloaded``) and backs off rather than growing the queue without limit.
    """

    def __init__(self, policy: BatchPolicy) -> None:
        self._policy = policy
        self._interactive: collections.deque[Pending[In, Out]] = collections.deque()
        self._low: collections.deque[Pending[In, Out]] = collections.deque()
        self.interactive = 0
        """Interactive items waiting (cancelled ones are not counted)."""
        self.low = 0
        """Low-priority items waiting."""

    def count(self, low_priority: bool) -> int:
        return self.low if low_priority else self.interactive

    def free(self, low_priority: bool) -> int:
        """Slots left in the queue of that priority."""
        return self._policy.max_queue_size - self.count(low_priority)

    def admit(self, count: int, low_priority: bool, retry_after_s: Callable[[], float]) -> None:
        """Refuse ``count`` items of that priority that could never fit (``InvalidInput``)
        or do not fit now (``Overloaded``, with the hint ``retry_after_s`` gives only
        then); admitted all together or not at all."""
        size = self._policy.max_queue_size
        if count > size:
            # Could never fit, however long the caller waited: not an overload.
            raise InvalidInput(
                f"{count} items in one request; this model's queue holds at most"
                f" {size} (max_queue_size)"
            )
        if count > self.free(low_priority):
            which = "low-priority queue" if low_priority else "queue"
            raise Overloaded(
                f"the {which} is full ({self.count(low_priority)} of {size} waiting); retry later",
                retry_after_s=retry_after_s(),
            )

    def add(self, pending: list[Pending[In, Out]]) -> None:
        for p in pending:
            if p.low_priority:
                self._low.append(p)
                self.low += 1
            else:
                self._interactive.append(p)
                self.interactive += 1

    def forget(self, p: Pending[In, Out]) -> None:
        """Its caller gave up: its slot frees at once, the entry is dropped when reached."""
        self._leave(p)
        p.state = PendingState.GONE

    def _leave(self, p: Pending[In, Out]) -> None:
        if p.state is PendingState.QUEUED:
            if p.low_priority:
                self.low -= 1
            else:
                self.interactive -= 1

    def drop_leftovers(self) -> None:
        """Nothing waits: drop the entries of callers that gave up."""
        self._interactive.clear()
        self._low.clear()

    def oldest(self, low_priority: bool) -> float | None:
        """When the oldest item still waiting at that priority was queued."""
        queue = self._low if low_priority else self._interactive
        while queue and queue[0].state is not PendingState.QUEUED:
            queue.popleft()
        return queue[0].enqueued_at if queue else None

    def take(self, low_priority: bool, now: float) -> tuple[list[Pending[In, Out]], int]:
        """Up to a batch of items of that priority, oldest first; items whose deadline
        passed are failed on the way. Returns the batch and how many expired."""
        queue = self._low if low_priority else self._interactive
        most = self._policy.max_batch_size
        if low_priority:
            most = min(most, self._policy.low_priority_max_batch)
        batch: list[Pending[In, Out]] = []
        expired = 0
        while queue and len(batch) < most:
            p = queue.popleft()
            if p.state is not PendingState.QUEUED or p.future.done():
                self.forget(p)
                continue
            self._leave(p)
            p.state = PendingState.TAKEN
            if p.deadline is not None and p.deadline <= now:
                expired += 1
                p.future.set_exception(
                    DeadlineExpired("the deadline passed while the request was queued")
                )
                continue
            batch.append(p)
        return batch, expired

    def reject_all(self, error: Exception) -> int:
        """Fail every item still waiting with ``error``; returns how many."""
        rejected = 0
        for queue in (self._interactive, self._low):
            while queue:
                p = queue.popleft()
                if p.state is PendingState.QUEUED and not p.future.done():
                    p.future.set_exception(error)
                    rejected += 1
                self.forget(p)
        return rejected
