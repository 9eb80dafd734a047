"""Per-key rate limits shared by every gateway replica, kept in one Redis.

Each check is one Lua script (EVALSHA through ``register_script``; the scripts are the
``.lua`` files beside this module) or one atomic command, so several gateway processes
never race each other. Time is Redis ``TIME``, read inside the
script, so the replicas' own clocks do not matter; ``now_ms`` overrides it for tests only.

- ``hit``: a per-minute burst limit (GCRA) and a per-UTC-day request quota, checked
  together; a request is counted only when both allow it.
- ``reserve_day``: several units of the daily quota at once (a bulk request's lines), or
  unused ones given back.
- ``tokens_left`` / ``spend_tokens``: a per-UTC-day budget of generated tokens.
- ``open_stream`` / ``renew_stream`` / ``close_stream``: open streams per subject, as
  leases that expire, so a gateway that dies cannot hold a slot forever.

Every key carries a TTL, so nothing outlives what it counts. Keys of one subject share a
hash tag (``sy:rl:{key:ab12cd34}:gcra``) so they land on one slot under Redis Cluster.
Redis errors (``ConnectionError``, ``TimeoutError``, ...) propagate as they are: the
caller decides whether to fail open or closed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio

_HERE = Path(__file__).parent


def lua(name: str) -> str:
    """A Lua script (or a part of one) kept beside this module."""
    return (_HERE / name).read_text(encoding="utf-8")


NOW_LUA = lua("now.lua")
"""The prelude of every script: ``now_us`` (Redis TIME, or a test's override), ``int``."""
HIT_FUNCTION_LUA = lua("hit_function.lua")
"""The GCRA burst limit and daily quota as the function ``hit``, which the key check's
script (``gateway.access.keys``) shares."""
HIT_LUA = NOW_LUA + HIT_FUNCTION_LUA + lua("hit.lua")
TOKENS_LUA = NOW_LUA + lua("tokens.lua")
RESERVE_DAY_LUA = NOW_LUA + lua("reserve_day.lua")
OPEN_STREAM_LUA = NOW_LUA + lua("streams.lua") + lua("open_stream.lua")
RENEW_STREAM_LUA = NOW_LUA + lua("streams.lua") + lua("renew_stream.lua")

DEFAULT_LEASE_S = 600.0


@dataclass(frozen=True)
class Decision:
    """The outcome of one ``RateLimiter.hit``."""

    allowed: bool
    limit: str  # which limit refused: "minute" | "day" | "" (allowed)
    remaining_minute: int  # requests the burst still allows right now
    remaining_day: int | None  # requests left today (UTC); None when there is no daily cap
    reset_s: int  # seconds until the burst is full again
    retry_after_s: int  # seconds until a retry can succeed; 0 when allowed
    day_reset_s: int  # seconds until the daily quota resets (00:00 UTC)
    per_minute: int
    per_day: int | None


def decision_of(result: list[Any], per_minute: int, per_day: int | None) -> Decision:
    """The ``Decision`` that the Lua ``hit`` function's answer describes."""
    allowed, limit, remaining_minute, remaining_day, reset_s, retry_s, day_reset_s = result
    return Decision(
        allowed=bool(allowed),
        limit=_text(limit),
        remaining_minute=int(remaining_minute),
        remaining_day=None if per_day is None else int(remaining_day),
        reset_s=int(reset_s),
        retry_after_s=int(retry_s),
        day_reset_s=int(day_reset_s),
        per_minute=per_minute,
        per_day=per_day,
    )


def now_arg(now_ms: int | None) -> str:
    return "" if now_ms is None else str(int(now_ms))


def lease_us(lease_s: float) -> int:
    """A stream lease's length in microseconds; refuses one that is not positive."""
    if not lease_s > 0:
        raise ValueError(f"lease_s must be positive, got {lease_s}")
    return max(1, round(lease_s * 1_000_000))


def check_limits(per_minute: int, per_day: int | None) -> None:
    """Refuse limits no limiter can apply (both limiters check, before any counting)."""
    if per_minute < 1:
        raise ValueError(f"per_minute must be at least 1, got {per_minute}")
    if per_day is not None and per_day < 0:
        raise ValueError(f"per_day must be None or at least 0, got {per_day}")


def check_tokens(tokens: int) -> None:
    if tokens < 0:
        raise ValueError(f"tokens must be at least 0, got {tokens}")


def check_max_streams(max_streams: int) -> None:
    if max_streams < 0:
        raise ValueError(f"max_streams must be at least 0, got {max_streams}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RateLimiter:
    """Request, token and stream limits per subject (e.g. ``key:ab12cd34``), in Redis.

    The ``now_ms`` arguments replace Redis ``TIME`` and exist for tests only.
    """

    def __init__(self, redis: redis.asyncio.Redis, prefix: str = "sy:rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._hit = redis.register_script(HIT_LUA)
        self._tokens = redis.register_script(TOKENS_LUA)
        self._reserve_day = redis.register_script(RESERVE_DAY_LUA)
        self._open_stream = redis.register_script(OPEN_STREAM_LUA)
        self._renew_stream = redis.register_script(RENEW_STREAM_LUA)

    def key(self, subject: str, kind: str) -> str:
        """The Redis key of one kind of state ("gcra", "day", "tokens", "streams")."""
        return f"{self._prefix}{{{subject}}}:{kind}"

    async def hit(
        self, subject: str, per_minute: int, per_day: int | None, *, now_ms: int | None = None
    ) -> Decision:
        """Check one request against both limits and count it only if both allow it."""
        check_limits(per_minute, per_day)
        result = await self._hit(
            keys=[self.key(subject, "gcra"), self.key(subject, "day")],
            args=[per_minute, -1 if per_day is None else per_day, now_arg(now_ms)],
        )
        return decision_of(result, per_minute, per_day)

    async def reserve_day(
        self, subject: str, per_day: int, wanted: int, *, now_ms: int | None = None
    ) -> int:
        """Count up to ``wanted`` units against today's (UTC) quota of ``per_day``: the
        units granted (0 when it is spent); a negative ``wanted`` gives units back."""
        granted = await self._reserve_day(
            keys=[self.key(subject, "day")], args=[per_day, wanted, now_arg(now_ms)]
        )
        return int(granted)

    async def tokens_used(self, subject: str, *, now_ms: int | None = None) -> int:
        """Generated tokens counted for ``subject`` today (UTC)."""
        used = await self._tokens(keys=[self.key(subject, "tokens")], args=[0, now_arg(now_ms)])
        return int(used)

    async def tokens_left(
        self, subject: str, tokens_per_day: int | None, *, now_ms: int | None = None
    ) -> int | None:
        """Tokens the subject may still generate today; None when the budget is unlimited.

        0 means a new stream should be refused. Usage is added after a stream ends, so the
        last stream of a day may overshoot the budget; this never goes below 0.
        """
        if tokens_per_day is None:
            return None
        return max(0, tokens_per_day - await self.tokens_used(subject, now_ms=now_ms))

    async def spend_tokens(self, subject: str, tokens: int, *, now_ms: int | None = None) -> None:
        """Add ``tokens`` generated tokens to today's (UTC) usage."""
        check_tokens(tokens)
        if tokens:
            await self._tokens(keys=[self.key(subject, "tokens")], args=[tokens, now_arg(now_ms)])

    async def open_stream(
        self,
        subject: str,
        max_streams: int,
        lease_s: float = DEFAULT_LEASE_S,
        *,
        now_ms: int | None = None,
    ) -> str | None:
        """Take one of ``max_streams`` stream slots: a lease id, or None at the cap.

        The lease expires after ``lease_s`` unless renewed (``renew_stream``); give it back
        with ``close_stream``.
        """
        check_max_streams(max_streams)
        lease = secrets.token_hex(8)
        opened = await self._open_stream(
            keys=[self.key(subject, "streams")],
            args=[max_streams, lease_us(lease_s), lease, now_arg(now_ms)],
        )
        return lease if int(opened) else None

    async def renew_stream(
        self,
        subject: str,
        lease: str,
        lease_s: float = DEFAULT_LEASE_S,
        *,
        now_ms: int | None = None,
    ) -> bool:
        """Extend a live lease to ``lease_s`` from now; False if it had already expired."""
        renewed = await self._renew_stream(
            keys=[self.key(subject, "streams")],
            args=[lease_us(lease_s), lease, now_arg(now_ms)],
        )
        return bool(int(renewed))

    async def close_stream(self, subject: str, lease: str) -> None:
        """Give back a stream slot (a no-op if the lease already expired)."""
        await self._redis.zrem(self.key(subject, "streams"), lease)
