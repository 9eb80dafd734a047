"""What waits in a dynamic batcher's queue, and the policy that bounds it: how many items
one batch takes, how long the oldest may wait for a batch to fill, and how many may wait
at all. ``services.runtime.batcher`` gathers and runs the batches.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class BatchPolicy:
    """How a batcher gathers work."""

    max_batch_size: int
    max_queue_delay_s: float
    max_queue_size: int

    def __post_init__(self) -> None:
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
    None) and when it was queued."""

    item: In
    future: asyncio.Future[Out]
    deadline: float | None
    enqueued_at: float
    state: PendingState = field(default=PendingState.QUEUED)
