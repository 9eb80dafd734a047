"""Answering a bidirectional stream item by item, as each result is ready."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

Req = TypeVar("Req")
Resp = TypeVar("Resp")

log = logging.getLogger(__name__)


async def answer_as_ready(
    requests: AsyncIterable[Req],
    answer: Callable[[Req], Awaitable[Resp]],
    window: int,
) -> AsyncIterator[Resp]:
    """Yield ``answer(request)`` for each request in the order the answers finish.

    At most ``window`` requests are in flight: past that, the next request is not read,
    so HTTP/2 flow control pushes back on the sender instead of the queue filling up.
    ``answer`` must turn per-item failures into responses; an exception it raises ends
    the stream. When the caller goes away, every unfinished answer is cancelled.
    """
    done: asyncio.Queue[asyncio.Task[Resp] | None] = asyncio.Queue()
    slots = asyncio.Semaphore(window)
    in_flight: set[asyncio.Task[Resp]] = set()
    unanswered = 0  # started and not yet yielded (or dropped)

    def finished(task: asyncio.Task[Resp]) -> None:
        in_flight.discard(task)
        slots.release()
        done.put_nowait(task)

    async def read_all() -> None:
        nonlocal unanswered
        async for request in requests:
            await slots.acquire()
            unanswered += 1
            task = asyncio.ensure_future(answer(request))
            in_flight.add(task)
            task.add_done_callback(finished)

    reader = asyncio.ensure_future(read_all())
    reader.add_done_callback(lambda _: done.put_nowait(None))
    reading = True
    try:
        while reading or unanswered:
            item = await done.get()
            if item is None:
                reading = False
                if not reader.cancelled() and reader.exception() is not None:
                    raise reader.exception()  # type: ignore[misc]
                continue
            unanswered -= 1
            if not item.cancelled():
                yield item.result()
    finally:
        reader.cancel()
        for task in list(in_flight):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
