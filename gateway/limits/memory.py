"""The rate limiter kept in this process, for a gateway with no Redis at all.

The same GCRA burst limit, daily quota, token budget and stream leases as the Lua scripts,
for one process: every gateway process then has its own limits (the gateway warns).
"""

from __future__ import annotations

import math
import secrets
import time

from gateway.limits.ratelimit import (
    DEFAULT_LEASE_S,
    Decision,
    check_limits,
    check_max_streams,
    check_tokens,
    lease_us,
)

DAY_US = 86_400_000_000


def _now_us(now_ms: int | None) -> int:
    return now_ms * 1000 if now_ms is not None else time.time_ns() // 1000


class MemoryRateLimiter:
    """The same GCRA and daily quota as the Lua script, for one process (a
    ``LimitStorage``)."""

    def __init__(self) -> None:
        self._tat: dict[str, int] = {}
        self._day: dict[str, tuple[int, int]] = {}
        self._token_use: dict[str, tuple[int, int]] = {}
        self._streams: dict[str, dict[str, int]] = {}

    async def hit(
        self, subject: str, per_minute: int, per_day: int | None, *, now_ms: int | None = None
    ) -> Decision:
        check_limits(per_minute, per_day)
        now = _now_us(now_ms)
        interval = 60_000_000 // per_minute
        tolerance = per_minute * interval
        tat = max(self._tat.get(subject, now), now)
        minute_ok = tat + interval - now <= tolerance
        day = now // DAY_US
        counted_day, count = self._day.get(subject, (day, 0))
        count = count if counted_day == day else 0
        day_ok = per_day is None or count < per_day
        allowed = minute_ok and day_ok
        if allowed:
            tat += interval
            count += 1
            self._tat[subject] = tat
            self._day[subject] = (day, count)
        day_reset_s = math.ceil(((day + 1) * DAY_US - now) / 1e6)
        retry_s = 0
        if not minute_ok:
            retry_s = math.ceil((tat + interval - tolerance - now) / 1e6)
        if not day_ok:
            retry_s = max(retry_s, day_reset_s)
        return Decision(
            allowed=allowed,
            limit="day" if not day_ok else ("minute" if not minute_ok else ""),
            remaining_minute=max(0, (now + tolerance - tat) // interval),
            remaining_day=None if per_day is None else max(0, per_day - count),
            reset_s=math.ceil((tat - now) / 1e6),
            retry_after_s=retry_s,
            day_reset_s=day_reset_s,
            per_minute=per_minute,
            per_day=per_day,
        )

    async def reserve_day(
        self, subject: str, per_day: int, wanted: int, *, now_ms: int | None = None
    ) -> int:
        day = _now_us(now_ms) // DAY_US
        counted_day, count = self._day.get(subject, (day, 0))
        count = count if counted_day == day else 0
        granted = max(0, min(wanted, per_day - count)) if wanted >= 0 else -min(-wanted, count)
        self._day[subject] = (day, count + granted)
        return granted

    async def tokens_used(self, subject: str, *, now_ms: int | None = None) -> int:
        day, used = self._token_use.get(subject, (0, 0))
        return used if day == _now_us(now_ms) // DAY_US else 0

    async def tokens_left(
        self, subject: str, tokens_per_day: int | None, *, now_ms: int | None = None
    ) -> int | None:
        if tokens_per_day is None:
            return None
        return max(0, tokens_per_day - await self.tokens_used(subject, now_ms=now_ms))

    async def spend_tokens(self, subject: str, tokens: int, *, now_ms: int | None = None) -> None:
        check_tokens(tokens)
        used = await self.tokens_used(subject, now_ms=now_ms)
        self._token_use[subject] = (_now_us(now_ms) // DAY_US, used + tokens)

    async def open_stream(
        self,
        subject: str,
        max_streams: int,
        lease_s: float = DEFAULT_LEASE_S,
        *,
        now_ms: int | None = None,
    ) -> str | None:
        check_max_streams(max_streams)
        length_us = lease_us(lease_s)
        now = _now_us(now_ms)
        leases = self._live_leases(subject, now)
        if len(leases) >= max_streams:
            return None
        lease = secrets.token_hex(8)
        leases[lease] = now + length_us
        return lease

    async def renew_stream(
        self,
        subject: str,
        lease: str,
        lease_s: float = DEFAULT_LEASE_S,
        *,
        now_ms: int | None = None,
    ) -> bool:
        length_us = lease_us(lease_s)
        now = _now_us(now_ms)
        leases = self._live_leases(subject, now)
        if lease not in leases:
            return False
        leases[lease] = now + length_us
        return True

    def _live_leases(self, subject: str, now: int) -> dict[str, int]:
        """The subject's leases, the expired ones dropped."""
        leases = {k: v for k, v in self._streams.get(subject, {}).items() if v > now}
        self._streams[subject] = leases
        return leases

    async def close_stream(self, subject: str, lease: str) -> None:
        self._streams.get(subject, {}).pop(lease, None)
