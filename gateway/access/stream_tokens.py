"""Short-lived, single-use tokens that let a browser's ``EventSource`` open one stream.

``EventSource`` cannot send headers, and an API key in a URL would end up in browser
history and proxy logs. So the page trades its key (sent in a header) for a token that
opens one stream within ``ttl_s`` and is gone once used: a leaked URL is worth nothing.
"""

from __future__ import annotations

import hashlib
import json
import secrets

import redis.asyncio as redis

from gateway.access.auth import Caller
from gateway.limits.tiers import TierLimits

TOKEN_PREFIX = "sst_"  # noqa: S105 (a prefix, not a secret)


class StreamTokens:
    """Single-use stream tokens in Redis (a ``StreamTokenStorage``)."""

    def __init__(self, client: redis.Redis, prefix: str = "sy:", ttl_s: int = 60) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _key(self, token: str) -> str:
        return f"{self.prefix}stream-token:{hashlib.sha256(token.encode()).hexdigest()}"

    async def issue(self, caller: Caller) -> str:
        token = TOKEN_PREFIX + secrets.token_hex(24)
        record = {
            "id": caller.id,
            "owner": caller.owner,
            "roles": sorted(caller.roles),
            "tier": caller.tier,
            "limits": caller.limits.model_dump(),
        }
        await self.client.set(self._key(token), json.dumps(record), ex=self.ttl_s)
        return token

    async def redeem(self, token: str) -> Caller | None:
        """The caller the token was issued to, once; None if unknown, used or expired."""
        raw = await self.client.getdel(self._key(token))
        if raw is None:
            return None
        record = json.loads(raw)
        return Caller(
            record["id"],
            record["owner"],
            frozenset(record["roles"]),
            record["tier"],
            TierLimits.model_validate(record["limits"]),
        )
