"""The machine's real limit for a model: its forward pass (tokenization included) in a
tight loop in this process, at the best of several thread counts and batch sizes.

A served figure is judged against this best raw figure, never against a handicapped one
(one thread, or a batch size the server happens to use).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.runtime.torch_setup import configure_torch

TEXTS = [
    "I love this, it is wonderful.",
    "This was a terrible waste of money.",
    "Not bad at all, I would buy it again.",
    "The service was slow and the food was cold.",
]

BatchFn = Callable[[Sequence[str]], Sequence[object]]


@dataclass(frozen=True)
class RawLimit:
    texts_per_s: float
    threads: int
    batch_size: int


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def rate(predict: BatchFn, size: int, seconds: float) -> float:
    """Texts per second of forward passes of ``size`` texts in a tight loop."""
    batch = [TEXTS[i % len(TEXTS)] for i in range(size)]
    predict(batch)
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        predict(batch)
        done += size
    return done / (time.perf_counter() - started)


def single_ms(predict: BatchFn, calls: int = 30) -> float:
    """Median milliseconds of a forward pass of one text."""
    times = []
    for number in range(calls):
        started = time.perf_counter()
        predict([TEXTS[number % len(TEXTS)]])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def best_limit(
    predictors: Callable[[int], BatchFn],
    thread_counts: Sequence[int],
    sizes: Sequence[int],
    seconds: float,
) -> RawLimit:
    """The best texts/s over thread counts and batch sizes; ``predictors(threads)`` gives
    the model's batch function running on that many threads."""
    best = RawLimit(0.0, 0, 0)
    for threads in thread_counts:
        predict = predictors(threads)
        for size in sizes:
            found = rate(predict, size, seconds)
            if found > best.texts_per_s:
                best = RawLimit(found, threads, size)
    return best


def torch_threads(threads: int) -> None:
    """Run this process's torch on ``threads`` intra-op threads from now on."""
    configure_torch(threads)
