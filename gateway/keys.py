"""API keys, kept in Redis so that every gateway replica sees a new or revoked key at once.

A key reads ``sy_<id>_<secret>``: the prefix makes a leaked key easy to recognise (and to
scan for), the id names it in logs and lists, the secret is 192 random bits. Only the
SHA-256 of the whole key is stored: a slow password hash buys nothing for a random
secret that long, and the lookup runs on every request. The comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis

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
    def __init__(self, client: redis.Redis, prefix: str = "sy:") -> None:
        self.client = client
        self.prefix = prefix

    def _record(self, key_id: str) -> str:
        return f"{self.prefix}key:{key_id}"

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

    async def get(self, key_id: str) -> ApiKey | None:
        fields = await self.client.hgetall(self._record(key_id))
        return _from_fields(key_id, _decoded(fields)) if fields else None

    async def list(self) -> list[ApiKey]:
        ids = sorted(_text(m) for m in await self.client.smembers(self._index))
        records = [await self.get(key_id) for key_id in ids]
        return [r for r in records if r is not None]

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
