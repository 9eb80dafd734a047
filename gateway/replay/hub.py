"""Generations that outlive their connection: each runs in a task of its own, writes its
events to the replay logs as they come, and is read from them by the client that started
it and by any reconnect (on this replica from memory, elsewhere from Redis). With no
reader for the grace period, a generation is cancelled; with none in Redis, only this
replica can replay its own generations.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, Awaitable, Coroutine
from typing import Any

import redis.asyncio as redis

from gateway.replay.events import LostEvent, ReplayEvent, StreamOwner
from gateway.replay.local import LocalReplay
from gateway.replay.shared import SharedReplay

log = logging.getLogger(__name__)

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)


class GenerationHub:
    def __init__(self, local: LocalReplay, shared: SharedReplay | None, grace_s: float) -> None:
        self._local = local
        self._shared = shared
        self._grace_s = grace_s
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self,
        generation: str,
        owner: StreamOwner,
        source: AsyncGenerator[ReplayEvent, None],
        lost: LostEvent,
    ) -> None:
        """Run a generation whose events ``source`` yields (its last one marked ``last``);
        closing ``source`` must stop the generation."""
        self._local.begin(generation, owner)
        shared = self._shared
        if shared is not None and not await _share("begin", shared.begin(generation, owner)):
            shared = None
        producer = self._spawn(self._produce(generation, source, lost, shared))
        self._spawn(self._watch(generation, producer))

    async def owner(self, generation: str) -> StreamOwner | None:
        found = self._local.owner(generation)
        if found is None and self._shared is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                found = await self._shared.owner(generation)
        return found

    def read(
        self, generation: str, after: int, lost: LostEvent
    ) -> AsyncGenerator[ReplayEvent, None]:
        """The generation's events after index ``after``, then its live tail."""
        if self._local.has(generation):
            return self._local.read(generation, after)
        if self._shared is not None:
            return self._read_shared(generation, after, lost)
        return _nothing()

    async def close(self) -> None:
        """Cancel every generation still running (the gateway stops)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read_shared(
        self, generation: str, after: int, lost: LostEvent
    ) -> AsyncGenerator[ReplayEvent, None]:
        assert self._shared is not None
        try:
            async for event in self._shared.read(generation, after, lost):
                yield event
        except REDIS_ERRORS:
            yield lost("the replay buffer is unreachable; send the request again")

    async def _produce(
        self,
        generation: str,
        source: AsyncGenerator[ReplayEvent, None],
        lost: LostEvent,
        shared: SharedReplay | None,
    ) -> None:
        """Keep each event as it comes: here first (the local reader never waits on
        Redis), then in Redis; after one failed write, no more for this generation, so an
        unreachable Redis costs its resume elsewhere but never slows the stream."""
        index = 0
        ended = False

        async def keep(event: ReplayEvent) -> None:
            nonlocal index, ended, shared
            event = dataclasses.replace(event, index=index)
            index += 1
            ended = event.last
            self._local.append(generation, event)
            if shared is not None and not await _share("append", shared.append(generation, event)):
                shared = None

        keeper = self._spawn(self._keep_alive(generation, shared))
        try:
            async with contextlib.aclosing(source):
                async for event in source:
                    await keep(event)
                    if event.last:
                        return
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("a streamed generation failed")
        finally:
            keeper.cancel()
            if not ended:
                await keep(lost("the generation stopped before its end; send the request again"))

    async def _watch(self, generation: str, producer: asyncio.Task[None]) -> None:
        """Cancel the generation once nobody has read it for the grace period."""
        while await self._local.wait_unread(generation, self._grace_s):
            if self._shared is not None:
                with contextlib.suppress(*REDIS_ERRORS):
                    if await self._shared.reader_present(generation):
                        continue  # read through another replica: look again later
            producer.cancel()
            return

    async def _keep_alive(self, generation: str, shared: SharedReplay | None) -> None:
        """Between events (a long wait in the model's queue), tell readers elsewhere that
        this replica still runs the generation."""
        while shared is not None:
            await asyncio.sleep(self._grace_s / 3)
            await _share("keep_alive", shared.keep_alive(generation))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def _share(what: str, call: Awaitable[None]) -> bool:
    """A write to the shared log, and whether it worked; a Redis failure costs resume
    through other replicas, never the stream itself."""
    try:
        await call
    except REDIS_ERRORS:
        log.warning("replay buffer %s failed: resume through other replicas is off", what)
        return False
    return True


async def _nothing() -> AsyncGenerator[ReplayEvent, None]:
    return
    yield
