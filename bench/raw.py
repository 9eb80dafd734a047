"""The machine's real limit for a model: its forward pass (tokenization included) in a
tight loop in this process, at the best of several thread counts and batch sizes.

A served figure is judged against this best raw figure, never against a handicapped one
(one thread, or a batch size the server happens to use). Besides one loop at each thread
count, the best includes one single-threaded loop per core side by side, each in a thread
of its own: on this machine that beat one loop on two threads by a fifth or more, since
two independent passes never wait for each other between kernels.
"""

from __future__ import annotations

import os
import statistics
import threading
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
    """Intra-op threads of each loop."""
    batch_size: int
    loops: int = 1
    """Loops running side by side, each in a thread of its own."""


Predictors = Callable[[int], BatchFn]
"""``predictors(threads)`` gives the model's batch function running on that many threads
when called from the thread that calls it."""


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def thread_counts() -> list[int]:
    """The torch thread counts a raw limit tries for one loop: one, and every core."""
    return sorted({1, cores()})


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


def side_by_side_rate(predictors: Predictors, loops: int, size: int, seconds: float) -> float:
    """Texts per second of ``loops`` single-threaded tight loops running at once."""
    rates = [0.0] * loops
    ready = threading.Barrier(loops)

    def loop(number: int) -> None:
        predict = predictors(1)
        predict([TEXTS[0]])  # loaded and warm before the loops start together
        ready.wait()
        rates[number] = rate(predict, size, seconds)

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(loops)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(rates)


def limit_rate(predictors: Predictors, limit: RawLimit, seconds: float) -> float:
    """Texts per second at ``limit``'s threads, batch size and loops, measured now."""
    if limit.loops > 1:
        return side_by_side_rate(predictors, limit.loops, limit.batch_size, seconds)
    return rate(predictors(limit.threads), limit.batch_size, seconds)


def single_ms(predict: BatchFn, calls: int = 30) -> float:
    """Median milliseconds of a forward pass of one text."""
    times = []
    for number in range(calls):
        started = time.perf_counter()
        predict([TEXTS[number % len(TEXTS)]])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def best_single_ms(predictors: Predictors) -> float:
    """One text's forward pass at the thread count that makes it quickest."""
    return min(single_ms(predictors(threads)) for threads in thread_counts())


def best_limit(
    predictors: Predictors, thread_counts: Sequence[int], sizes: Sequence[int], seconds: float
) -> RawLimit:
    """The best texts/s over thread counts, batch sizes, and one loop per core side by
    side (when there are several cores)."""
    best = RawLimit(0.0, 0, 0)
    for threads in thread_counts:
        predict = predictors(threads)
        for size in sizes:
            found = rate(predict, size, seconds)
            if found > best.texts_per_s:
                best = RawLimit(found, threads, size)
    if cores() > 1:
        for size in sizes:
            found = side_by_side_rate(predictors, cores(), size, seconds)
            if found > best.texts_per_s:
                best = RawLimit(found, 1, size, cores())
    return best


def torch_threads(threads: int) -> None:
    """Run torch on ``threads`` intra-op threads from now on, in the calling thread (OpenMP
    keeps the count per thread, so each side-by-side loop sets its own)."""
    configure_torch(threads)
