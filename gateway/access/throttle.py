"""Invalid credentials throttled per client address: past ``per_minute`` of them in a
minute, the address is answered 429 (with Retry-After) until its minute is over.

Only a credential presented and found invalid counts (a bad API key, a bad, expired or
revoked token); a request with no credential does not. Failures are counted where every
replica sees them (one script in Redis: INCR and EXPIRE together); the answer to a valid
key is not held up by them: the count is read only when a failure happens. Each replica
remembers the addresses it saw go over the limit and refuses them before any key check;
a replica that has not seen the address fail since refuses it from its next failure on
(the shared count is over the limit by then), so a guesser gets at most ``per_minute``
401s a minute however many replicas it spreads its guesses over.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as redis

from gateway.access.interfaces import FailureCounter
from gateway.errors.refusals import RateLimited

log = logging.getLogger(__name__)

WINDOW_S = 60
MAX_BLOCKED = 100_000
"""Past this many blocked addresses remembered, those whose window ended are dropped."""

_SCRIPT = Path(__file__).with_name("auth_failures.lua").read_text(encoding="utf-8")


class RedisFailureCounter:
    """Invalid credentials per address in Redis (a ``FailureCounter``)."""

    def __init__(self, client: redis.Redis, prefix: str = "sy:") -> None:
        self.prefix = prefix
        self._count = client.register_script(_SCRIPT)

    def key(self, address: str) -> str:
        return f"{self.prefix}auth-failures:{address}"

    async def count(self, address: str, window_s: int) -> tuple[int, int]:
        count, left = await self._count(keys=[self.key(address)], args=[window_s])
        return int(count), int(left)


class AuthThrottle:
    """The failures of each address counted (``counter``), and the addresses over
    ``per_minute`` refused; ``per_minute`` 0 turns throttling off."""

    def __init__(
        self,
        counter: FailureCounter,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counter = counter
        self.per_minute = per_minute
        self._clock = clock
        self._blocked: dict[str, float] = {}
        """Address: when (monotonic) its window ends, for those this replica saw go over."""

    def check(self, address: str) -> None:
        """Refuse an address while it is over the limit (no store is read)."""
        until = self._blocked.get(address)
        if until is None:
            return
        left = until - self._clock()
        if left <= 0:
            del self._blocked[address]
            return
        raise self._refusal(left)

    async def failed(self, address: str) -> None:
        """Count an invalid credential from ``address``; 429 in place of the 401 once the
        address is over the limit. A store that cannot be reached counts nothing."""
        if self.per_minute <= 0 or not address:
            return
        try:
            count, left_s = await self.counter.count(address, WINDOW_S)
        except (redis.ConnectionError, redis.TimeoutError):
            log.warning("auth failures not counted: Redis unreachable")
            return
        if count < self.per_minute:
            return
        now = self._clock()
        if len(self._blocked) >= MAX_BLOCKED:
            self._blocked = {a: t for a, t in self._blocked.items() if t > now}
        self._blocked[address] = now + left_s
        if count > self.per_minute:
            log.warning("address %s is over %d invalid credentials a minute", address, count - 1)
            raise self._refusal(left_s)

    def _refusal(self, left_s: float) -> RateLimited:
        retry_after_s = max(1, math.ceil(left_s))
        return RateLimited(
            f"too many invalid credentials from this address; retry in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )
