"""The generations this replica runs: their events, owner and readers, in this process,
kept for a while after they end so that a reconnect can still replay them."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncGenerator, Callable

from gateway.replay.events import ReplayEvent, StreamOwner


class _Log:
    def __init__(self, owner: StreamOwner) -> None:
        self.owner = owner
        self.events: list[ReplayEvent] = []
        self.readers = 0
        self._changed = asyncio.Event()

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].last

    def changed(self) -> None:
        """Wake every waiter: an event was added, or a reader came or went."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()


def _beyond(log: _Log, position: int) -> bool:
    return len(log.events) > position or log.ended


class LocalReplay:
    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._logs: dict[str, _Log] = {}

    def begin(self, generation: str, owner: StreamOwner) -> None:
        self._logs[generation] = _Log(owner)

    def owner(self, generation: str) -> StreamOwner | None:
        log = self._logs.get(generation)
        return log.owner if log is not None else None

    def has(self, generation: str) -> bool:
        return generation in self._logs

    def append(self, generation: str, event: ReplayEvent) -> None:
        log = self._logs[generation]
        if log.ended:
            return
        log.events.append(event)
        if event.last:  # kept for late reconnects, then forgotten
            asyncio.get_running_loop().call_later(self._ttl_s, self._logs.pop, generation, None)
        log.changed()

    async def read(self, generation: str, after: int) -> AsyncGenerator[ReplayEvent, None]:
        """The events after index ``after``, then each new one as it is added, to the
        last; this counts as a reader for as long as it is read."""
        log = self._logs[generation]
        log.readers += 1
        log.changed()
        try:
            for position in itertools.count(after + 1):
                await log.until(functools.partial(_beyond, log, position))
                if position >= len(log.events):
                    return  # the client had every event already
                event = log.events[position]
                yield event
                if event.last:
                    return
        finally:
            log.readers -= 1
            log.changed()

    async def wait_unread(self, generation: str, grace_s: float) -> bool:
        """Wait until the generation has had no reader here for ``grace_s`` seconds
        (True), or until it ends (False)."""
        log = self._logs[generation]
        while True:
            await log.until(lambda: log.readers == 0 or log.ended)
            if log.ended:
                return False
            try:
                async with asyncio.timeout(grace_s):
                    await log.until(lambda: log.readers > 0 or log.ended)
            except TimeoutError:
                return True
