"""Graceful shutdown: what is in flight, and the moment draining starts.

On SIGTERM the gateway stops being ready, refuses new model calls (another replica
takes them), lets the calls in flight finish, ends open streams with an error event
that tells the client to send its request again, and only then exits.
"""

from __future__ import annotations

import asyncio


class Drain:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def draining(self) -> bool:
        return self.started.is_set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    def begin(self) -> None:
        self.started.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is in flight; False if ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
