"""The key store, stream tokens, revoked tokens and failure counts kept in this process,
for a gateway with no Redis.

They keep the same rules (hashed keys, single-use stream tokens) inside one gateway
process, so the local system works without Redis; but every process then has its own
keys, which is why the gateway warns loudly when it uses them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.access.auth import Caller
from gateway.access.keys import (
    ApiKey,
    Checked,
    UnknownTier,
    key_hash,
    key_id_of,
    new_record,
)
from gateway.access.stream_tokens import TOKEN_PREFIX
from gateway.limits.interfaces import LimitStorage
from gateway.limits.tiers import TierLimits, limits_for


class MemoryKeyStore:
    """API key records in this process (a ``KeyStorage``)."""

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

    async def verify_and_count(
        self,
        key: str,
        tiers: dict[str, TierLimits],
        limiter: LimitStorage,
        subject: str,
        *,
        now_ms: int | None = None,
    ) -> Checked | None:
        checked, _ = await self.verify_count_and_get(
            key, tiers, limiter, subject, (), now_ms=now_ms
        )
        return checked

    async def verify_count_and_get(
        self,
        key: str,
        tiers: dict[str, TierLimits],
        limiter: LimitStorage,
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


class MemoryStreamTokens:
    """Single-use stream tokens in this process (a ``StreamTokenStorage``)."""

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


MAX_REMEMBERED = 100_000
"""Past this many entries, expired ones are dropped (so a flood cannot grow them forever)."""


class MemoryRevokedTokens:
    """Revoked ``jti``s in this process (a ``RevokedTokenStorage``)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    async def revoke(self, token_id: str, ttl_s: int, reason: str = "") -> None:
        now = time.monotonic()
        if len(self._until) >= MAX_REMEMBERED:
            self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[token_id] = now + max(1, ttl_s)

    async def is_revoked(self, token_id: str) -> bool:
        return await self.ttl_s(token_id) is not None

    async def ttl_s(self, token_id: str) -> int | None:
        left = self._until.get(token_id, 0.0) - time.monotonic()
        return math.ceil(left) if left > 0 else None


class MemoryFailureCounter:
    """Invalid credentials per address in this process (a ``FailureCounter``)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}

    async def count(self, address: str, window_s: int) -> tuple[int, int]:
        now = time.monotonic()
        if len(self._windows) >= MAX_REMEMBERED:
            self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        count, ends = self._windows.get(address, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window_s
        self._windows[address] = (count + 1, ends)
        return count + 1, max(1, math.ceil(ends - now))
