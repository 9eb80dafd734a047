"""Answering a bidirectional stream item by item, as each result is ready."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import TypeVar

from services.runtime.errors import Unavailable

Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def answer_as_ready(
    requests: AsyncIterable[Req],
    answer: Callable[[Req], Awaitable[Resp]],
    window: int,
    stop_reading: asyncio.Event | None = None,
) -> AsyncGenerator[Resp, None]:
    """Yield ``answer(request)`` for each request in the order the answers finish.

    At most ``window`` requests are read and not yet sent back: past that, the next
    request is not read, so HTTP/2 flow control pushes back on a sender that sends faster
    than it reads. ``answer`` must turn per-item failures into responses; an exception it
    raises ends the stream. When ``stop_reading`` is set (the service is draining), no
    further request is read, every request already read is answered, and the stream ends
    with ``Unavailable`` so that the caller resends the rest elsewhere. When the caller
    goes away, every unfinished answer is cancelled.
    """
    done: asyncio.Queue[asyncio.Task[Resp] | None] = asyncio.Queue()
    slots = asyncio.Semaphore(window)
    in_flight: set[asyncio.Task[Resp]] = set()
    unanswered = 0  # read and not yet yielded (or dropped)
    stopped_early = False

    def finished(task: asyncio.Task[Resp]) -> None:
        in_flight.discard(task)
        done.put_nowait(task)

    async def read_all() -> None:
        nonlocal unanswered
        async for request in requests:
            await slots.acquire()
            unanswered += 1
            task = asyncio.ensure_future(answer(request))
            in_flight.add(task)
            task.add_done_callback(finished)

    async def stop_when_draining() -> None:
        nonlocal stopped_early
        assert stop_reading is not None
        await stop_reading.wait()
        if not reader.done():
            stopped_early = True
            reader.cancel()

    reader = asyncio.ensure_future(read_all())
    reader.add_done_callback(lambda _: done.put_nowait(None))
    watcher = asyncio.ensure_future(stop_when_draining()) if stop_reading else None
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
            slots.release()  # only once sent: unsent answers count against the window
        if stopped_early:
            raise Unavailable(
                "the service is draining; the stream was closed after answering every item"
                " it had read: resend the rest to another replica"
            )
    finally:
        reader.cancel()
        if watcher is not None:
            watcher.cancel()
        for task in list(in_flight):
            task.cancel()
        # Answers finished but never sent: fetch their errors so none goes unretrieved.
        while not done.empty():
            leftover = done.get_nowait()
            if leftover is not None and not leftover.cancelled():
                leftover.exception()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
