"""In-process stand-ins for the Redis stores, for a machine with no Redis at all.

They keep the same rules (hashed keys, GCRA burst and daily quota, token budget, stream
leases, single-use stream tokens, a bounded prediction cache) inside one gateway process,
so the local system works without Redis; but every process then has its own keys,
limits and cache, which is why the gateway warns loudly when it uses them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.auth import Caller
from gateway.cache import PredictionCache
from gateway.keys import ApiKey, Checked, KeyStore, UnknownTier, key_hash, key_id_of, new_record
from gateway.ratelimit import Decision, RateLimiter
from gateway.stream_tokens import TOKEN_PREFIX, StreamTokens
from gateway.tiers import TierLimits, limits_for

DAY_US = 86_400_000_000


def _now_us(now_ms: int | None) -> int:
    return now_ms * 1000 if now_ms is not None else time.time_ns() // 1000


class MemoryKeyStore(KeyStore):
    def __init__(self, seeded: Iterable[tuple[ApiKey, str]] = ()) -> None:
        self._records: dict[str, tuple[ApiKey, str]] = {r.id: (r, h) for r, h in seeded}

    async def create(
        self, owner: str, role: str, tier: str, limits: dict[str, Any] | None = None
    ) -> tuple[ApiKey, str]:
        record, key = new_record(owner, role, tier, limits)
        self._records[record.id] = (record, key_hash(key))
        return record, key

    async def verify(self, key: str) -> ApiKey | None:
        found = self._records.get(key_id_of(key) or "")
        if found is None or not hmac.compare_digest(found[1], key_hash(key)):
            return None
        return None if found[0].revoked else found[0]

    async def verify_count_and_get(
        self,
        key: str,
        tiers: dict[str, TierLimits],
        limiter: RateLimiter,
        subject: str,
        also_get: Sequence[str],
        *,
        now_ms: int | None = None,
    ) -> tuple[Checked | None, list[bytes | None] | None]:
        # Nothing to save in one process: the cache is read on its own (values: None).
        record = await self.verify(key)
        if record is None:
            return None, None
        try:
            limits = limits_for(tiers, record.tier, record.limits)
        except KeyError:
            raise UnknownTier(record) from None
        decision = await limiter.hit(subject, limits.per_minute, limits.per_day, now_ms=now_ms)
        return (record, limits, decision), None

    async def move_older_records(self) -> int:
        return 0

    async def get(self, key_id: str) -> ApiKey | None:
        found = self._records.get(key_id)
        return found[0] if found else None

    async def list(self) -> list[ApiKey]:
        return [self._records[key_id][0] for key_id in sorted(self._records)]

    async def revoke(self, key_id: str) -> bool:
        found = self._records.get(key_id)
        if found is None:
            return False
        record, digest = found
        self._records[key_id] = (ApiKey(**{**record.__dict__, "revoked": True}), digest)
        return True


class MemoryRateLimiter(RateLimiter):
    """The same GCRA and daily quota as the Lua script, for one process."""

    def __init__(self) -> None:
        self._tat: dict[str, int] = {}
        self._day: dict[str, tuple[int, int]] = {}
        self._token_use: dict[str, tuple[int, int]] = {}
        self._streams: dict[str, dict[str, int]] = {}

    async def hit(
        self, subject: str, per_minute: int, per_day: int | None, *, now_ms: int | None = None
    ) -> Decision:
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
        used = await self.tokens_used(subject, now_ms=now_ms)
        self._token_use[subject] = (_now_us(now_ms) // DAY_US, used + tokens)

    async def open_stream(
        self, subject: str, max_streams: int, lease_s: float = 600, *, now_ms: int | None = None
    ) -> str | None:
        now = _now_us(now_ms)
        leases = {k: v for k, v in self._streams.get(subject, {}).items() if v > now}
        self._streams[subject] = leases
        if len(leases) >= max_streams:
            return None
        lease = secrets.token_hex(8)
        leases[lease] = now + int(lease_s * 1e6)
        return lease

    async def close_stream(self, subject: str, lease: str) -> None:
        self._streams.get(subject, {}).pop(lease, None)


class MemoryStreamTokens(StreamTokens):
    def __init__(self, ttl_s: int = 60) -> None:
        self.ttl_s = ttl_s
        self._issued: dict[str, tuple[Caller, float]] = {}

    async def issue(self, caller: Caller) -> str:
        now = time.monotonic()
        self._issued = {k: v for k, v in self._issued.items() if v[1] > now}
        token = TOKEN_PREFIX + secrets.token_hex(24)
        self._issued[hashlib.sha256(token.encode()).hexdigest()] = (caller, now + self.ttl_s)
        return token

    async def redeem(self, token: str) -> Caller | None:
        found = self._issued.pop(hashlib.sha256(token.encode()).hexdigest(), None)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]


class MemoryPredictionCache(PredictionCache):
    """At most ``max_entries`` results, the oldest dropped first."""

    def __init__(self, ttl_s: int, max_entries: int = 10_000, prefix: str = "sy:cache:") -> None:
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    async def lookup(self, keys: Sequence[str]) -> list[bytes | str | None]:
        now = time.monotonic()
        found: list[bytes | str | None] = []
        for key in keys:
            entry = self._entries.get(key)
            found.append(entry[0] if entry is not None and entry[1] > now else None)
        return found

    async def store(self, entries: dict[str, bytes]) -> None:
        expires = time.monotonic() + self.ttl_s
        for key, value in entries.items():
            self._entries[key] = (value, expires)
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
