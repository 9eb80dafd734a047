"""Running one batch on a worker and answering each of its callers.

Outputs answer the callers in order; a batch that fails fails each of its calls with the
same error. A worker that died (its process is gone) is told apart from a batch that
failed, because then no later batch can run on it either: the batcher stops taking work.
Callers that gave up meanwhile are skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor, Executor
from typing import TypeVar

from services.runtime.batch_queue import Pending
from services.runtime.errors import Unavailable

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
    try:
        outputs = await loop.run_in_executor(executor, run_batch, inputs)
        if len(outputs) != len(inputs):
            raise RuntimeError(f"batch of {len(inputs)} gave {len(outputs)} outputs")
    except BrokenExecutor as died:
        fail(batch, Unavailable(WORKER_STOPPED))
        return died
    except Exception as exc:
        log.exception("batch of %d failed", len(inputs))
        fail(batch, exc)
        return None
    for p, out in zip(batch, outputs, strict=True):
        if not p.future.done():
            p.future.set_result(out)
    return None


def fail(batch: list[Pending[In, Out]], error: BaseException) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(error)
