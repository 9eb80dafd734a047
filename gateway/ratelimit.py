"""Per-key rate limits shared by every gateway replica, kept in one Redis.

Each check is one Lua script (EVALSHA through ``register_script``) or one atomic command,
so several gateway processes never race each other. Time is Redis ``TIME``, read inside the
script, so the replicas' own clocks do not matter; ``now_ms`` overrides it for tests only.

- ``hit``: a per-minute burst limit (GCRA) and a per-UTC-day request quota, checked
  together; a request is counted only when both allow it.
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
from typing import Any

import redis.asyncio

# Time inside the scripts is integer microseconds since the epoch (Redis TIME gives seconds
# and microseconds; ~1.7e15 us is well inside the 2^53 that Lua's doubles hold exactly).
# Every number the scripts write is formatted with %.0f so a large value is never stored in
# exponent notation.
NOW_LUA = """
local function now_us(override_ms)
  if override_ms ~= '' then
    return tonumber(override_ms) * 1000
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local DAY_US = 86400000000
local function int(x) return string.format('%.0f', x) end
"""

HIT_FUNCTION_LUA = """
-- hit(gcra_key, day_key, per_minute, per_day, now)
-- gcra_key    GCRA state: the theoretical arrival time (TAT), integer us since the epoch
-- day_key     day quota: hash {d = UTC day number, n = requests counted on that day}
-- per_minute  >= 1        per_day  -1 = no daily cap        now  us since the epoch
--
-- GCRA (generic cell rate algorithm). The limit is one request per emission interval
-- T = 60 s / per_minute, with a burst capacity of per_minute. The only state is the TAT:
-- the time at which the subject would be "caught up" if every request it was granted had
-- been spaced exactly T apart. Each granted request pushes the TAT forward by T (from now,
-- if the TAT is already in the past: idle time refills the burst, but only up to full). A
-- request is granted when its new TAT would lie at most tau = per_minute * T (= 60 s)
-- ahead of now, i.e. when at most per_minute intervals of work are "owed".
--
-- Why a window edge cannot double the burst: there are no windows. If k requests are
-- granted between t1 and tk, the TAT after them is at least t1 + k*T (it started at or
-- after t1 and grew by T per grant), and the grant at tk required TAT - tk <= tau, so
-- k <= per_minute + (tk - t1) / T. A full burst at 59.9 s followed by another at 60.1 s
-- gets nothing at 60.1 s: only 0.2 s of refill has happened, whereas a fixed-window
-- counter would reset at 60 s and grant a second full burst.
--
-- T is rounded down to whole microseconds, so tau = per_minute * T is exact and a fresh
-- subject gets exactly per_minute at once; the long-run rate is faster than exact by less
-- than one microsecond per request.
--
-- The day quota is a counter tagged with its UTC day number: a counter from an earlier day
-- reads as 0 (the key's TTL runs to the next 00:00 UTC as well, so it is also dropped).
-- Nothing is written unless both limits grant the request, so a refusal consumes nothing.
--
-- Returns {allowed 0/1, refused by 'minute' | 'day' | '', burst remaining (floor),
--          day remaining (-1 = no cap), s until the burst is full again (ceil),
--          s until a retry can succeed (ceil, 0 when allowed), s until 00:00 UTC (ceil)}
local function hit(gcra_key, day_key, per_minute, per_day, now)
  local interval = math.max(1, math.floor(60000000 / per_minute))
  local tau = per_minute * interval
  local tat = tonumber(redis.call('GET', gcra_key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local minute_ok = new_tat - now <= tau

  local day = math.floor(now / DAY_US)
  local day_end = (day + 1) * DAY_US
  local used = 0
  if per_day >= 0 then
    local stored = redis.call('HMGET', day_key, 'd', 'n')
    if tonumber(stored[1]) == day then used = tonumber(stored[2]) or 0 end
  end
  local day_ok = per_day < 0 or used < per_day

  local allowed = minute_ok and day_ok
  if allowed then
    tat = new_tat
    -- Once the TAT has passed the state equals a fresh one, so the key can expire then.
    redis.call('SET', gcra_key, int(tat), 'PX', int(math.ceil((tat - now) / 1000)))
    if per_day >= 0 then
      used = used + 1
      redis.call('HSET', day_key, 'd', int(day), 'n', int(used))
      redis.call('PEXPIRE', day_key, int(math.ceil((day_end - now) / 1000)))
    end
  end

  local limit = ''
  if not day_ok then limit = 'day' elseif not minute_ok then limit = 'minute' end
  local remaining_minute = math.max(0, math.floor((now + tau - tat) / interval))
  local remaining_day = -1
  if per_day >= 0 then remaining_day = math.max(0, per_day - used) end
  local reset_s = math.ceil((tat - now) / 1000000)
  local day_reset_s = math.ceil((day_end - now) / 1000000)
  local retry_s = 0
  if not minute_ok then retry_s = math.ceil((new_tat - tau - now) / 1000000) end
  if not day_ok then retry_s = math.max(retry_s, day_reset_s) end
  return {allowed and 1 or 0, limit, remaining_minute, remaining_day, reset_s, retry_s,
          day_reset_s}
end
"""

HIT_LUA = (
    NOW_LUA
    + HIT_FUNCTION_LUA
    + """
-- KEYS[1]  GCRA state    KEYS[2]  day quota
-- ARGV[1]  per_minute (>= 1)    ARGV[2]  per_day (-1 = no daily cap)
-- ARGV[3]  now in ms (tests only; '' = Redis TIME)
return hit(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), now_us(ARGV[3]))
"""
)

TOKENS_LUA = (
    NOW_LUA
    + """
-- KEYS[1]  token budget: hash {d = UTC day number, n = tokens generated on that day}
-- ARGV[1]  tokens to add (0 = only read)    ARGV[2]  now in ms (tests only; '' = TIME)
-- Returns the tokens used today, after adding ARGV[1]. A counter from an earlier day
-- reads as 0; the key expires at the next 00:00 UTC.
local add = tonumber(ARGV[1])
local now = now_us(ARGV[2])
local day = math.floor(now / DAY_US)
local stored = redis.call('HMGET', KEYS[1], 'd', 'n')
local used = 0
if tonumber(stored[1]) == day then used = tonumber(stored[2]) or 0 end
if add > 0 then
  used = used + add
  redis.call('HSET', KEYS[1], 'd', int(day), 'n', int(used))
  redis.call('PEXPIRE', KEYS[1], int(math.ceil(((day + 1) * DAY_US - now) / 1000)))
end
return used
"""
)

# Streams: a sorted set of lease ids scored by their expiry (us). Each call first drops the
# expired leases, so a lease whose gateway died frees its slot when its TTL runs out. The
# key's own TTL follows the latest lease expiry, so an idle subject leaves nothing behind.
_STREAMS_LUA = """
local function prune(now)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
end
local function expire_with_last_lease(now)
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[1], int(math.max(1, math.ceil((tonumber(last[2]) - now) / 1000))))
end
"""

OPEN_STREAM_LUA = (
    NOW_LUA
    + _STREAMS_LUA
    + """
-- KEYS[1]  open streams: zset lease id -> expiry (us)
-- ARGV[1]  max_streams   ARGV[2]  lease length (us)   ARGV[3]  lease id
-- ARGV[4]  now in ms (tests only; '' = Redis TIME)
-- Returns 1 and adds the lease when fewer than max_streams live leases exist, else 0.
local now = now_us(ARGV[4])
prune(now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], int(now + tonumber(ARGV[2])), ARGV[3])
expire_with_last_lease(now)
return 1
"""
)

RENEW_STREAM_LUA = (
    NOW_LUA
    + _STREAMS_LUA
    + """
-- KEYS[1]  open streams: zset lease id -> expiry (us)
-- ARGV[1]  lease length (us) from now   ARGV[2]  lease id
-- ARGV[3]  now in ms (tests only; '' = Redis TIME)
-- Returns 1 and extends the lease if it is still live, else 0 (it expired: the slot may
-- already belong to another stream).
local now = now_us(ARGV[3])
prune(now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', int(now + tonumber(ARGV[1])), ARGV[2])
expire_with_last_lease(now)
return 1
"""
)

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


def _lease_us(lease_s: float) -> int:
    if not lease_s > 0:
        raise ValueError(f"lease_s must be positive, got {lease_s}")
    return max(1, round(lease_s * 1_000_000))


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
        self._open_stream = redis.register_script(OPEN_STREAM_LUA)
        self._renew_stream = redis.register_script(RENEW_STREAM_LUA)

    def key(self, subject: str, kind: str) -> str:
        """The Redis key of one kind of state ("gcra", "day", "tokens", "streams")."""
        return f"{self._prefix}{{{subject}}}:{kind}"

    async def hit(
        self, subject: str, per_minute: int, per_day: int | None, *, now_ms: int | None = None
    ) -> Decision:
        """Check one request against both limits and count it only if both allow it."""
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        if per_day is not None and per_day < 0:
            raise ValueError(f"per_day must be None or at least 0, got {per_day}")
        result = await self._hit(
            keys=[self.key(subject, "gcra"), self.key(subject, "day")],
            args=[per_minute, -1 if per_day is None else per_day, now_arg(now_ms)],
        )
        return decision_of(result, per_minute, per_day)

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
        if tokens < 0:
            raise ValueError(f"tokens must be at least 0, got {tokens}")
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
        if max_streams < 0:
            raise ValueError(f"max_streams must be at least 0, got {max_streams}")
        lease = secrets.token_hex(8)
        opened = await self._open_stream(
            keys=[self.key(subject, "streams")],
            args=[max_streams, _lease_us(lease_s), lease, now_arg(now_ms)],
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
            args=[_lease_us(lease_s), lease, now_arg(now_ms)],
        )
        return bool(int(renewed))

    async def close_stream(self, subject: str, lease: str) -> None:
        """Give back a stream slot (a no-op if the lease already expired)."""
        await self._redis.zrem(self.key(subject, "streams"), lease)
