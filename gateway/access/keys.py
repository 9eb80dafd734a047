"""API keys, kept in Redis so that every gateway replica sees a new or revoked key at once.

A key reads ``sy_<id>_<secret>``: the prefix makes a leaked key easy to recognise (and to
scan for), the id names it in logs and lists, the secret is 192 random bits. Only the
SHA-256 of the whole key is stored: a slow password hash buys nothing for a random
secret that long, and the lookup runs on every request.

A presented key is checked by its id: its SHA-256 is compared with the digest stored under
that id. ``verify`` (every route but the model calls: the admin and operator APIs, the
exchange for a stream token) compares the two digests with ``hmac.compare_digest``, in
constant time. A model call's check compares them inside a Lua script, with a plain
string equality that is not constant-time; the comment above the script says why that
is safe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError

from gateway.limits.interfaces import LimitStorage
from gateway.limits.ratelimit import (
    HIT_FUNCTION_LUA,
    NOW_LUA,
    Decision,
    RateLimiter,
    decision_of,
    now_arg,
)
from gateway.limits.tiers import TierLimits, limits_for

# One round trip instead of two on every model request: the key's record is read and, if
# the key is live, the request is counted against its limits in the same script. Checking
# the hash first means a caller who knows only a key's public id cannot spend its quota.
# The script compares the stored digest with the presented key's digest (SHA-256, hex)
# with Lua's ``==``, which may stop at the first byte that differs: not constant time,
# and it need not be. Both sides are digests, never the secret: a timing difference could
# tell at most how long a prefix of the stored digest the digest of a guess shares, and
# knowing a prefix of a SHA-256 digest brings no one closer to a key that hashes to it
# (SHA-256 is preimage-resistant; the secret is 192 random bits). The difference is also
# nanoseconds inside a script Redis runs atomically, seen from across a network whose
# jitter is far larger. The script is verify_and_hit.lua, beside this module.
_SCRIPT_FILE = Path(__file__).with_name("verify_and_hit.lua")
VERIFY_AND_HIT_LUA = NOW_LUA + HIT_FUNCTION_LUA + _SCRIPT_FILE.read_text(encoding="utf-8")

KEY_PREFIX = "sy_"
ROLES = ("client", "operator", "admin")
_KEY_SHAPE = re.compile(r"^sy_([a-z0-9]{10})_([0-9a-f]{48})$")


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id of a well-formed key, else None."""
    match = _KEY_SHAPE.match(key)
    return match.group(1) if match else None


def new_key() -> tuple[str, str]:
    """A fresh (id, key)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    key_id = "".join(secrets.choice(alphabet) for _ in range(10))
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_hex(24)}"


def new_record(
    owner: str, role: str, tier: str, limits: dict[str, Any] | None = None
) -> tuple[ApiKey, str]:
    """A fresh key's record and the key itself."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key_id, key = new_key()
    return ApiKey(key_id, owner, role, tier, time.time(), False, dict(limits or {})), key


Checked = tuple["ApiKey", TierLimits, Decision]
"""A live key's record, its limits, and the decision on the request just counted."""


class UnknownTier(Exception):
    """A live key names a tier the gateway does not configure."""

    def __init__(self, record: ApiKey) -> None:
        super().__init__(record.tier)
        self.record = record


@dataclass(frozen=True)
class ApiKey:
    id: str
    owner: str
    role: str
    tier: str
    created_at: float
    revoked: bool = False
    limits: dict[str, Any] = field(default_factory=dict)
    """Overrides of the tier's limits for this key (same names as the tier's)."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "role": self.role,
            "tier": self.tier,
            "created_at": self.created_at,
            "revoked": self.revoked,
            "limits": self.limits,
        }


class KeyStore:
    """API key records in Redis (a ``KeyStorage``)."""

    def __init__(self, client: redis.Redis, prefix: str = "sy:") -> None:
        self.client = client
        self.prefix = prefix
        self._verify_and_hit = client.register_script(VERIFY_AND_HIT_LUA)

    def _record(self, key_id: str) -> str:
        # The hash tag equals the rate limiter's for ``key:<id>``, so the record and the
        # key's limits share a Redis Cluster slot, as one script touching both requires.
        return f"{self.prefix}key:{{key:{key_id}}}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}keys"

    async def create(
        self, owner: str, role: str, tier: str, limits: dict[str, Any] | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its plain text, which is shown once and never stored."""
        record, key = new_record(owner, role, tier, limits)
        await self.client.hset(
            self._record(record.id),
            mapping={
                "hash": key_hash(key),
                "owner": owner,
                "role": role,
                "tier": tier,
                "created_at": repr(record.created_at),
                "revoked": "0",
                "limits": json.dumps(record.limits),
            },
        )
        await self.client.sadd(self._index, record.id)
        return record, key

    async def verify(self, key: str) -> ApiKey | None:
        """The key's record if ``key`` is a live key, else None."""
        key_id = key_id_of(key)
        if key_id is None:
            return None
        fields = await self.client.hgetall(self._record(key_id))
        if not fields:
            return None
        record_fields = _decoded(fields)
        if not hmac.compare_digest(record_fields.get("hash", ""), key_hash(key)):
            return None
        record = _from_fields(key_id, record_fields)
        return None if record.revoked else record

    async def verify_and_count(
        self,
        key: str,
        tiers: dict[str, TierLimits],
        limiter: LimitStorage,
        subject: str,
        *,
        now_ms: int | None = None,
    ) -> Checked | None:
        """``verify`` and, for a live key, ``limiter.hit`` on ``subject`` with its limits,
        in one Redis call. None for a key that is not live; ``UnknownTier`` for a live key
        whose tier is not configured (nothing is counted then)."""
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
        """``verify_and_count``, and the values of ``also_get`` (cache entries the caller
        may be about to read) in the same round trip: a pipeline of the script and an
        MGET. The values are the caller's to discard if the key turns out not live.
        ``limiter`` must be the Redis ``RateLimiter``: one script counts with its keys."""
        if not isinstance(limiter, RateLimiter):
            raise TypeError("the Redis key store counts requests with the Redis rate limiter")
        key_id = key_id_of(key)
        if key_id is None:
            return None, None
        tier_args: list[str | int] = []
        for name, limits in tiers.items():
            tier_args += [name, limits.per_minute, -1 if limits.per_day is None else limits.per_day]
        keys = [self._record(key_id), limiter.key(subject, "gcra"), limiter.key(subject, "day")]
        args = [key_hash(key), now_arg(now_ms), *tier_args]
        found: list[bytes | None] | None = None
        if also_get:
            answer, found = await self._script_and_mget(keys, args, also_get)
        else:
            answer = await self._verify_and_hit(keys=keys, args=args)
        return self._checked(key_id, answer, tiers), found

    async def _script_and_mget(
        self, keys: list[str], args: list[str | int], also_get: Sequence[str]
    ) -> tuple[list[Any], list[bytes | None]]:
        # A pipeline, not the Script object: redis-py checks a pipeline's scripts with
        # SCRIPT EXISTS before every execute, which would cost the round trip saved here.
        for _ in range(2):
            pipe = self.client.pipeline(transaction=False)
            pipe.evalsha(self._verify_and_hit.sha, len(keys), *keys, *args)
            pipe.mget(also_get)
            try:
                answer, found = await pipe.execute()
            except NoScriptError:
                await self.client.script_load(VERIFY_AND_HIT_LUA)
                continue
            return answer, found
        raise NoScriptError("the key script could not be loaded")

    @staticmethod
    def _checked(key_id: str, answer: list[Any], tiers: dict[str, TierLimits]) -> Checked | None:
        status = _text(answer[0])
        if status in ("unknown", "revoked"):
            return None
        role, owner, tier, overrides, created_at = (_text(v) for v in answer[1:6])
        record = ApiKey(
            key_id, owner, role, tier, float(created_at or 0), False, json.loads(overrides or "{}")
        )
        if status == "tier":
            raise UnknownTier(record)
        per_minute, per_day = int(answer[6]), int(answer[7])
        decision = decision_of(answer[8:], per_minute, None if per_day < 0 else per_day)
        return record, limits_for(tiers, tier, record.limits), decision

    async def get(self, key_id: str) -> ApiKey | None:
        fields = await self.client.hgetall(self._record(key_id))
        return _from_fields(key_id, _decoded(fields)) if fields else None

    async def list(self) -> list[ApiKey]:
        ids = sorted(_text(m) for m in await self.client.smembers(self._index))
        records = [await self.get(key_id) for key_id in ids]
        return [r for r in records if r is not None]

    async def move_older_records(self) -> int:
        """Records written under the older key name (``sy:key:<id>``, before the record
        shared its key's hash tag) moved to the current one; how many were moved. Run at
        start, so that keys made before keep working."""
        moved = 0
        for member in await self.client.smembers(self._index):
            key_id = _text(member)
            older = f"{self.prefix}key:{key_id}"
            if older != self._record(key_id) and await self.client.exists(older):
                # RENAMENX: a record already at the current name (made since) is kept.
                moved += int(await self.client.renamenx(older, self._record(key_id)))
        return moved

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such key. Every replica refuses it from the
        next request on (nothing caches a key)."""
        if not await self.client.exists(self._record(key_id)):
            return False
        await self.client.hset(self._record(key_id), "revoked", "1")
        return True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decoded(fields: dict[bytes | str, bytes | str]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}


def _from_fields(key_id: str, fields: dict[str, str]) -> ApiKey:
    def text(name: str) -> str:
        return fields.get(name, "")

    return ApiKey(
        id=key_id,
        owner=text("owner"),
        role=text("role"),
        tier=text("tier"),
        created_at=float(text("created_at") or 0),
        revoked=text("revoked") == "1",
        limits=json.loads(text("limits") or "{}"),
    )
