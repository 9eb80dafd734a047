"""Running one batch on a worker and answering each of its callers.

Outputs answer the callers in order; a batch that fails fails each of its calls with the
same error. A worker that died (its process is gone) is told apart from a batch that
failed, because then no later batch can run on it either: the batcher stops taking work.
Callers that gave up meanwhile are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor, Executor
from typing import TypeVar

from services.runtime import tracing
from services.runtime.batch_queue import Pending
from services.runtime.errors import Unavailable
from switchyard import telemetry

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)

WORKER_STOPPED = "the model worker stopped; retry on another replica"


async def run_and_answer(
    executor: Executor,
    run_batch: Callable[[Sequence[In]], Sequence[Out]],
    batch: list[Pending[In, Out]],
) -> BrokenExecutor | None:
    """Run ``batch`` on ``executor`` and answer its callers; returns the error when the
    worker died (each caller got ``Unavailable``), None otherwise."""
    loop = asyncio.get_running_loop()
    inputs = [p.item for p in batch]
    traces = [p.trace for p in batch] if telemetry.ENABLED else []
    traced = any(t is not None for t in traces)
    taken_ns = time.time_ns() if traced else 0
    forward: tuple[int, int] | None = None
    try:
        if traced:  # timed where it runs: see services.runtime.tracing
            outputs, *times = await loop.run_in_executor(
                executor, tracing.timed_run, run_batch, inputs
            )
            forward = (times[0], times[1])
        else:
            outputs = await loop.run_in_executor(executor, run_batch, inputs)
        if len(outputs) != len(inputs):
            raise RuntimeError(f"batch of {len(inputs)} gave {len(outputs)} outputs")
    except BrokenExecutor as died:
        fail(batch, Unavailable(WORKER_STOPPED))
        if traced:
            tracing.batch_ran(traces, taken_ns, forward, died)
        return died
    except Exception as exc:
        log.exception("batch of %d failed", len(inputs))
        fail(batch, exc)
        if traced:
            tracing.batch_ran(traces, taken_ns, forward, exc)
        return None
    for p, out in zip(batch, outputs, strict=True):
        if not p.future.done():
            p.future.set_result(out)
    if traced:
        tracing.batch_ran(traces, taken_ns, forward, None)
    return None


def fail(batch: list[Pending[In, Out]], error: BaseException) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(error)
