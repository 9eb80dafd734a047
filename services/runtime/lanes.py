"""The workers a batcher hands batches to: one lane per worker (an executor that runs one
batch at a time), each holding the batch it runs and at most the next one.

Knowing when each lane's batches began lets the batcher hand the next batch over just
before a worker frees up, and measure a batch's own duration rather than its wait
behind the one before it.
"""

from __future__ import annotations

import collections
from concurrent.futures import Executor
from dataclasses import dataclass

PIPELINED = 2
"""Batches a lane holds at once when batches are short: the running one and the next."""


@dataclass(eq=False)
class Flight:
    """One batch handed to a lane."""

    handed_at: float
    began_at: float | None
    """When it began to run; None while it waits behind the lane's running batch."""


class Lane:
    """One worker and the batches handed to it, oldest (running) first."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.flights: collections.deque[Flight] = collections.deque()

    @property
    def load(self) -> int:
        return len(self.flights)

    def free_at(self, batch_s: float) -> float:
        """When the lane is expected to have run what it holds (0 when it is idle)."""
        if not self.flights:
            return 0.0
        running = self.flights[0]
        began = running.began_at if running.began_at is not None else running.handed_at
        return began + batch_s * len(self.flights)

    def hand(self, now: float) -> Flight:
        flight = Flight(now, now if not self.flights else None)
        self.flights.append(flight)
        return flight

    def finish(self, flight: Flight, now: float) -> float:
        """Mark ``flight`` done; returns how long it ran."""
        self.flights.remove(flight)
        began = flight.began_at if flight.began_at is not None else flight.handed_at
        if self.flights and self.flights[0].began_at is None:
            self.flights[0].began_at = now  # the next one starts as this one ends
        return now - began


def idle(lanes: list[Lane]) -> Lane | None:
    return next((lane for lane in lanes if lane.load == 0), None)


def next_free(lanes: list[Lane], batch_s: float, depth: int) -> Lane | None:
    """The lane holding fewer than ``depth`` batches that is expected to free up first."""
    open_lanes = [lane for lane in lanes if lane.load < depth]
    return min(open_lanes, key=lambda lane: lane.free_at(batch_s), default=None)
