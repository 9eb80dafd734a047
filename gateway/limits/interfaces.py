"""The interface of the limits' store: ``RateLimiter`` keeps the counts in Redis (shared by
every replica, ``gateway.limits.ratelimit``), ``MemoryRateLimiter`` in this process
(``gateway.limits.memory``). Both follow the same rules.

Subjects are callers (``key:ab12cd34``, ``jwt:alice``). ``now_ms`` replaces the clock,
for tests only. Store errors (Redis unreachable) propagate: the caller decides whether to
fail open or closed.
"""

from __future__ import annotations

from typing import Protocol

from gateway.limits.ratelimit import DEFAULT_LEASE_S, Decision


class LimitStorage(Protocol):
    async def hit(
        self, subject: str, per_minute: int, per_day: int | None, *, now_ms: int | None = None
    ) -> Decision:
        """Check one request against the burst and daily limits; count it only if both
        allow it."""
        ...

    async def reserve_day(
        self, subject: str, per_day: int, wanted: int, *, now_ms: int | None = None
    ) -> int:
        """Count up to ``wanted`` units against today's quota of ``per_day`` (the units
        granted, 0 when spent); a negative ``wanted`` gives units back."""
        ...

    async def tokens_used(self, subject: str, *, now_ms: int | None = None) -> int:
        """Generated tokens counted for ``subject`` today (UTC)."""
        ...

    async def tokens_left(
        self, subject: str, tokens_per_day: int | None, *, now_ms: int | None = None
    ) -> int | None:
        """Tokens ``subject`` may still generate today; None when unlimited; never below 0."""
        ...

    async def spend_tokens(self, subject: str, tokens: int, *, now_ms: int | None = None) -> None:
        """Add generated tokens to today's (UTC) usage."""
        ...

    async def open_stream(
        self,
        subject: str,
        max_streams: int,
        lease_s: float = DEFAULT_LEASE_S,
        *,
        now_ms: int | None = None,
    ) -> str | None:
        """Take one of ``max_streams`` stream slots: a lease that expires after
        ``lease_s`` unless renewed, or None at the cap."""
        ...

    async def renew_stream(
        self,
        subject: str,
        lease: str,
        lease_s: float = DEFAULT_LEASE_S,
        *,
        now_ms: int | None = None,
    ) -> bool:
        """Extend a live lease to ``lease_s`` from now; False if it had already expired."""
        ...

    async def close_stream(self, subject: str, lease: str) -> None:
        """Give back a stream slot (a no-op if the lease already expired)."""
        ...
