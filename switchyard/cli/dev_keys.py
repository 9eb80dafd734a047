"""The development admin key and client key that ``switchyard up`` makes at start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as redis

from gateway.access.keys import KeyStore, key_hash, new_key
from switchyard.paths import state_dir
from switchyard.run_state import write_private_json

# Who owns each development key, and the role and tier it has.
DEV_KEYS = {"admin": ("local-admin", "enterprise"), "client": ("local-client", "pro")}


def bootstrap_keys(redis_url: str, revoke_earlier: bool) -> dict[str, str]:
    """A new development key per role in the Redis at ``redis_url``. With
    ``revoke_earlier`` (the local system's own Redis, which keeps its keys from one run to
    the next in its append-only file) the development keys of earlier runs are revoked:
    a key printed by a run that ended should not stay live. A Redis of the user's own may
    be shared, and its keys are left alone."""

    async def make() -> dict[str, str]:
        client = redis.Redis.from_url(redis_url)
        try:
            store = KeyStore(client)
            owners = {owner for owner, _ in DEV_KEYS.values()}
            for record in await store.list() if revoke_earlier else []:
                if record.owner in owners and not record.revoked:
                    await store.revoke(record.id)
            keys = {}
            for role, (owner, tier) in DEV_KEYS.items():
                _, keys[role] = await store.create(owner, role, tier)
            return keys
        finally:
            await client.aclose()

    return asyncio.run(make())


def seed_keys_file() -> tuple[dict[str, str], Path]:
    """Development keys for a gateway without Redis: their hashes go to a file (owner-only)
    that its in-process key store starts from, every time it starts."""
    keys: dict[str, str] = {}
    entries = []
    for role, (owner, tier) in DEV_KEYS.items():
        key_id, key = new_key()
        keys[role] = key
        entries.append(
            {"id": key_id, "owner": owner, "role": role, "tier": tier, "hash": key_hash(key)}
        )
    return keys, write_private_json(state_dir() / "seed-keys.json", entries)
