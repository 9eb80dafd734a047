"""The loop behind every counter that a gateway replica keeps in memory and adds to a
shared store now and then (live figures, experiment answers, shadow agreement).

One place decides how such counters survive: a flush that fails is logged and the loop
goes on, and the flush made when the loop is cancelled (at shutdown) gives up after a
bound, so a store that hangs cannot hold a shutdown up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

FINAL_FLUSH_TIMEOUT_S = 2.0
"""How long the last flush, at shutdown, may take."""


async def flush_every(
    flush: Callable[[], Awaitable[None]],
    interval_s: float,
    log: logging.Logger,
    failure: str,
) -> None:
    """Await ``flush()`` every ``interval_s`` until cancelled, then once more within
    ``FINAL_FLUSH_TIMEOUT_S`` if it can; a flush that raises is logged as ``failure``."""
    try:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await flush()
            except Exception:
                log.exception(failure)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(FINAL_FLUSH_TIMEOUT_S):
                await flush()
