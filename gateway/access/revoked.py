"""Revoked bearer tokens, by ``jti``, in Redis so that every replica refuses them at once.

A revocation is kept until the token would have expired anyway, and no longer: the entry
is a key per ``jti`` whose TTL ends at the token's expiry (or, when that is not known, at
the longest lifetime the gateway accepts, ``jwt_max_lifetime_s``). The ``jti`` is hashed
into the key name: it is the token issuer's free text, of any length.

A token without a ``jti`` cannot be revoked (``jwt_require_jti`` refuses such tokens).
"""

from __future__ import annotations

import hashlib
import json
import math
import time

import redis.asyncio as redis

MIN_TTL_S = 1


def revocation_ttl_s(expires_at: float | None, max_lifetime_s: float, leeway_s: float) -> int:
    """Seconds a revocation must be remembered: until the token expires (with the
    verifier's leeway for clock skew), or the longest lifetime when the expiry is not
    known; at least a second."""
    if expires_at is None:
        return max(MIN_TTL_S, math.ceil(max_lifetime_s + leeway_s))
    left = min(expires_at - time.time(), max_lifetime_s) + leeway_s
    return max(MIN_TTL_S, math.ceil(left))


class RevokedTokens:
    """The denylist of ``jti``s in Redis (a ``RevokedTokenStorage``)."""

    def __init__(self, client: redis.Redis, prefix: str = "sy:") -> None:
        self.client = client
        self.prefix = prefix

    def key(self, token_id: str) -> str:
        return f"{self.prefix}revoked-jti:{hashlib.sha256(token_id.encode()).hexdigest()}"

    async def revoke(self, token_id: str, ttl_s: int, reason: str = "") -> None:
        record = json.dumps({"revoked_at": time.time(), "reason": reason})
        await self.client.set(self.key(token_id), record, ex=max(MIN_TTL_S, ttl_s))

    async def is_revoked(self, token_id: str) -> bool:
        return bool(await self.client.exists(self.key(token_id)))

    async def ttl_s(self, token_id: str) -> int | None:
        """Seconds the revocation is still remembered; None if there is none."""
        left = int(await self.client.ttl(self.key(token_id)))
        return left if left >= 0 else None
